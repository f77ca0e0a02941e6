package uplink

import (
	"errors"
	"fmt"
	"github.com/wallphone/wallphone/internal/strictjson"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
)

// Config is vault.json: where the phone ships its sealed files, and with which (write-only)
// credentials. Exactly one of Endpoint and Dir is set.
type Config struct {
	// Endpoint is the S3-compatible store's base URL: https://host[:port] (http:// only for a
	// store on the same host or a closed network: the credentials are signed, not sent, but
	// the objects' names are visible).
	Endpoint string `json:"endpoint,omitempty"`
	Bucket   string `json:"bucket,omitempty"`
	// Region is the bucket's region; "us-east-1" if empty.
	Region    string `json:"region,omitempty"`
	AccessKey string `json:"access_key,omitempty"`
	SecretKey string `json:"secret_key,omitempty"`
	// BandwidthBytesPerSecond caps the upload rate; 0 is no cap.
	BandwidthBytesPerSecond int64 `json:"bandwidth_bytes_per_second,omitempty"`
	// PartSizeBytes is the part size of a multipart upload (5 MiB to 5 GiB): a file larger
	// than it goes up in parts that survive a restart. 0 is DefaultPartSize.
	PartSizeBytes int64 `json:"part_size_bytes,omitempty"`
	// Dir is a local directory acting as the vault (the simulated phone's default), with the
	// same key layout as a bucket.
	Dir string `json:"dir,omitempty"`
}

// Part sizes: S3 refuses parts under 5 MiB (but the last) and over 5 GiB.
const (
	MinPartSize     int64 = 5 << 20
	MaxPartSize     int64 = 5 << 30
	DefaultPartSize int64 = 16 << 20
)

// ErrConfig is wrapped by every error of ParseConfig.
var ErrConfig = errors.New("vault.json")

var bucketName = regexp.MustCompile(`^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$`)

// ParseConfig reads and checks vault.json: unknown fields, a bad endpoint or bucket name,
// missing credentials and a negative cap are refused with an error saying what is wrong.
func ParseConfig(b []byte) (Config, error) {
	var c Config
	if err := strictjson.Decode(b, &c); err != nil {
		return Config{}, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if err := c.Validate(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// Validate checks a Config; see ParseConfig.
func (c Config) Validate() error {
	bad := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, a...))
	}
	if c.BandwidthBytesPerSecond < 0 {
		return bad("bandwidth_bytes_per_second is %d: give 0 (no cap) or a positive rate", c.BandwidthBytesPerSecond)
	}
	if c.Dir != "" {
		if c.Endpoint != "" || c.Bucket != "" || c.AccessKey != "" || c.SecretKey != "" {
			return bad("dir is a local vault: give either dir or endpoint, bucket and keys, not both")
		}
		if !filepath.IsAbs(c.Dir) {
			return bad("dir %q is not an absolute path", c.Dir)
		}
		return nil
	}
	u, err := url.Parse(c.Endpoint)
	switch {
	case c.Endpoint == "":
		return bad("no endpoint (https://host[:port] of the store) and no dir")
	case err != nil:
		return bad("endpoint %q: %v", c.Endpoint, err)
	case u.Scheme != "https" && u.Scheme != "http":
		return bad("endpoint %q: want https://host[:port]", c.Endpoint)
	case u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
		return bad("endpoint %q: want only scheme, host and port (the bucket goes in bucket)", c.Endpoint)
	case !bucketName.MatchString(c.Bucket) || strings.Contains(c.Bucket, ".."):
		return bad("bucket %q: not an S3 bucket name (3 to 63 of a-z, 0-9, '.', '-')", c.Bucket)
	case c.AccessKey == "" || c.SecretKey == "":
		return bad("access_key and secret_key are required (the phone's write-only credentials)")
	case c.PartSizeBytes != 0 && (c.PartSizeBytes < MinPartSize || c.PartSizeBytes > MaxPartSize):
		return bad("part_size_bytes is %d: want %d to %d, or 0 for %d", c.PartSizeBytes, MinPartSize, MaxPartSize, DefaultPartSize)
	}
	return nil
}

// Host is the endpoint's host[:port], and whether it is https.
func (c Config) Host() (host string, secure bool) {
	u, _ := url.Parse(c.Endpoint)
	return u.Host, u.Scheme == "https"
}

func (c Config) partSize() int64 {
	if c.PartSizeBytes == 0 {
		return DefaultPartSize
	}
	return c.PartSizeBytes
}

// RegionOrDefault is the region, "us-east-1" if none is given.
func (c Config) RegionOrDefault() string {
	if c.Region == "" {
		return "us-east-1"
	}
	return c.Region
}
