package uplink

import (
	"context"
	"crypto/md5"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"log/slog"
	"net/http"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3 is a vault in an S3-compatible bucket, reached with write-only credentials: PutObject,
// and for multipart uploads ListMultipartUploadParts and AbortMultipartUpload. It never
// reads, lists or deletes an object.
type S3 struct {
	core     *minio.Core
	bucket   string
	partSize int64
	state    *State
	throttle *throttle
	log      *slog.Logger
}

// NewS3 connects (lazily: no request is made) to the store of c. state keeps multipart
// uploads across restarts; transport nil is http.DefaultTransport's settings.
func NewS3(c Config, state *State, transport http.RoundTripper, log *slog.Logger) (*S3, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	if c.Dir != "" {
		return nil, fmt.Errorf("%w: dir is set: that is a local vault (use Dir)", ErrConfig)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	host, secure := c.Host()
	cl, err := minio.New(host, &minio.Options{
		Creds:     credentials.NewStaticV4(c.AccessKey, c.SecretKey, ""),
		Secure:    secure,
		Region:    c.RegionOrDefault(),
		Transport: transport,
		// One try per call: the uplink retries, with backoff, forever.
		MaxRetries:   1,
		BucketLookup: minio.BucketLookupPath,
	})
	if err != nil {
		return nil, fmt.Errorf("vault %s: %w", c.Endpoint, err)
	}
	return &S3{core: &minio.Core{Client: cl}, bucket: c.Bucket, partSize: c.partSize(), state: state,
		throttle: newThrottle(c.BandwidthBytesPerSecond), log: log}, nil
}

// Put uploads r under key: in one request up to the part size, else in parts that survive a
// restart. Every request carries Content-MD5 and the SHA-256 of its body in the signed
// x-amz-content-sha256 header (SigV4), so the store refuses bytes that differ from what the
// phone hashed; the phone hashed them against the SHA-256 the spool committed, so a file that
// changed on flash is not sent (ErrChecksum). The upload counts as confirmed only if the
// store's answer matches: the ETag is the MD5 sent (for parts, the MD5 of the parts' MD5s,
// "-N"), or the store echoes an x-amz-checksum-sha256 equal to the committed one.
// (x-amz-checksum-sha256 is not sent with single requests: the store would hash the body a
// third time for no more safety.)
func (v *S3) Put(ctx context.Context, key string, r io.ReaderAt, size int64, sum [32]byte) error {
	if size > v.partSize {
		return v.putMultipart(ctx, key, r, size, sum)
	}
	md5sum, err := hashSection(r, 0, size, sum)
	if err != nil {
		return fmt.Errorf("vault: %s: %w", key, err)
	}
	b64 := base64.StdEncoding.EncodeToString(sum[:])
	info, err := v.core.PutObject(ctx, v.bucket, key, v.throttle.reader(ctx, io.NewSectionReader(r, 0, size)), size,
		base64.StdEncoding.EncodeToString(md5sum[:]), hex.EncodeToString(sum[:]),
		// The body's SHA-256 goes in the signed header in one piece: minio-go's streaming
		// signature (its default over http) would hash every chunk again.
		minio.PutObjectOptions{ContentType: "application/octet-stream", DisableContentSha256: true})
	if err != nil {
		return fmt.Errorf("vault: put %s: %w", key, err)
	}
	if info.ChecksumSHA256 != b64 && strings.Trim(info.ETag, `"`) != hex.EncodeToString(md5sum[:]) {
		return fmt.Errorf("vault: put %s: %w (checksum %q, ETag %q)", key, ErrUnconfirmed, info.ChecksumSHA256, info.ETag)
	}
	return nil
}

// hashSection reads size bytes of r at off and returns their MD5, checking their SHA-256
// against want when want is not zero.
func hashSection(r io.ReaderAt, off, size int64, want [32]byte) ([16]byte, error) {
	m, s := md5.New(), sha256.New()
	n, err := io.Copy(io.MultiWriter(m, s), io.NewSectionReader(r, off, size))
	if err != nil {
		return [16]byte{}, err
	}
	if n != size {
		return [16]byte{}, fmt.Errorf("%w: read %d of %d bytes", ErrChecksum, n, size)
	}
	if want != ([32]byte{}) && [32]byte(s.Sum(nil)) != want {
		return [16]byte{}, fmt.Errorf("%w: the file is not what was committed", ErrChecksum)
	}
	return [16]byte(m.Sum(nil)), nil
}

// multipart is what State keeps of one multipart upload: enough to resume it after a restart
// (the parts themselves are listed from the store, which is the truth about them).
type multipart struct {
	UploadID string `json:"upload_id"`
	Size     int64  `json:"size"`
	SHA256   string `json:"sha256"`
	PartSize int64  `json:"part_size"`
}

func (v *S3) putMultipart(ctx context.Context, key string, r io.ReaderAt, size int64, sum [32]byte) error {
	if _, err := hashSection(r, 0, size, sum); err != nil {
		return fmt.Errorf("vault: %s: %w", key, err)
	}
	want := multipart{Size: size, SHA256: hex.EncodeToString(sum[:]), PartSize: v.partSize}
	var mp multipart
	ok, err := v.state.get(bucketMultipart, key, &mp)
	if err != nil {
		return err
	}
	if ok && (mp.Size != want.Size || mp.SHA256 != want.SHA256 || mp.PartSize != want.PartSize) {
		// Another content under the same key (a manifest rewritten): start again.
		v.abort(ctx, key, mp.UploadID)
		ok = false
	}
	var have map[int]minio.ObjectPart
	if ok {
		have, err = v.listParts(ctx, key, mp.UploadID)
		var er minio.ErrorResponse
		if errors.As(err, &er) && er.Code == "NoSuchUpload" {
			v.log.Warn("vault: the store forgot a multipart upload; starting it again", "event", "uplink_multipart_restart", "key", key)
			ok = false
		} else if err != nil {
			return fmt.Errorf("vault: list parts of %s: %w", key, err)
		}
	}
	if !ok {
		id, err := v.core.NewMultipartUpload(ctx, v.bucket, key, minio.PutObjectOptions{ContentType: "application/octet-stream"})
		if err != nil {
			return fmt.Errorf("vault: start multipart upload of %s: %w", key, err)
		}
		want.UploadID = id
		mp = want
		if err := v.state.put(bucketMultipart, key, mp); err != nil {
			return err
		}
		have = nil
	} else if len(have) > 0 {
		v.log.Info("vault: resuming a multipart upload", "event", "uplink_multipart_resume", "key", key, "parts_there", len(have))
	}

	var parts []minio.CompletePart
	all := md5.New()
	for n, off := 1, int64(0); off < size; n, off = n+1, off+v.partSize {
		psize := min(v.partSize, size-off)
		pmd5, err := hashSection(r, off, psize, [32]byte{})
		if err != nil {
			return fmt.Errorf("vault: %s part %d: %w", key, n, err)
		}
		etag := hex.EncodeToString(pmd5[:])
		all.Write(pmd5[:])
		if p, ok := have[n]; ok && strings.Trim(p.ETag, `"`) == etag && p.Size == psize {
			parts = append(parts, minio.CompletePart{PartNumber: n, ETag: p.ETag})
			continue
		}
		psha, err := sectionSHA256(r, off, psize)
		if err != nil {
			return fmt.Errorf("vault: %s part %d: %w", key, n, err)
		}
		p, err := v.core.PutObjectPart(ctx, v.bucket, key, mp.UploadID, n, v.throttle.reader(ctx, io.NewSectionReader(r, off, psize)), psize,
			minio.PutObjectPartOptions{Md5Base64: base64.StdEncoding.EncodeToString(pmd5[:]), Sha256Hex: hex.EncodeToString(psha), DisableContentSha256: true})
		if err != nil {
			return fmt.Errorf("vault: %s part %d: %w", key, n, err)
		}
		if strings.Trim(p.ETag, `"`) != etag {
			return fmt.Errorf("vault: %s part %d: %w (ETag %q, want %q)", key, n, ErrUnconfirmed, p.ETag, etag)
		}
		parts = append(parts, minio.CompletePart{PartNumber: n, ETag: p.ETag})
	}
	info, err := v.core.CompleteMultipartUpload(ctx, v.bucket, key, mp.UploadID, parts, minio.PutObjectOptions{})
	if err != nil {
		return fmt.Errorf("vault: complete multipart upload of %s: %w", key, err)
	}
	if wantTag := fmt.Sprintf("%x-%d", all.Sum(nil), len(parts)); strings.Trim(info.ETag, `"`) != wantTag {
		return fmt.Errorf("vault: complete %s: %w (ETag %q, want %q)", key, ErrUnconfirmed, info.ETag, wantTag)
	}
	return v.state.delete(bucketMultipart, key)
}

func sectionSHA256(r io.ReaderAt, off, size int64) ([]byte, error) {
	var h hash.Hash = sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(r, off, size)); err != nil {
		return nil, err
	}
	return h.Sum(nil), nil
}

// listParts lists the parts the store holds of an upload.
func (v *S3) listParts(ctx context.Context, key, uploadID string) (map[int]minio.ObjectPart, error) {
	have := make(map[int]minio.ObjectPart)
	marker := 0
	for {
		res, err := v.core.ListObjectParts(ctx, v.bucket, key, uploadID, marker, 1000)
		if err != nil {
			return nil, err
		}
		for _, p := range res.ObjectParts {
			have[p.PartNumber] = p
		}
		if !res.IsTruncated {
			return have, nil
		}
		marker = res.NextPartNumberMarker
	}
}

// abort gives up an upload whose content changed; a failure only leaves parts for the
// bucket's lifecycle rule to clean up.
func (v *S3) abort(ctx context.Context, key, uploadID string) {
	if err := v.core.AbortMultipartUpload(ctx, v.bucket, key, uploadID); err != nil {
		v.log.Warn("vault: could not abort an outdated multipart upload", "event", "uplink_error", "key", key, "err", err)
	}
	if err := v.state.delete(bucketMultipart, key); err != nil {
		v.log.Warn("vault: could not forget an outdated multipart upload", "event", "uplink_error", "key", key, "err", err)
	}
}
