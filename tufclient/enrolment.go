package tufclient

import (
	"encoding/json"
	"fmt"
	"net/url"

	"github.com/theupdateframework/go-tuf/v2/metadata/trustedmetadata"

	"github.com/wallphone/wallphone/internal/strictjson"
)

// Repository is what a technician installs as conf/repository.json: where the phone's
// repository is. Its trust comes from the root installed beside it, never from the address.
type Repository struct {
	URL string `json:"url"`
}

// Marshal is the file's content.
func (r Repository) Marshal() []byte {
	b, _ := json.Marshal(r)
	return append(b, '\n')
}

// ParseRepository reads repository.json and returns the URL, which must be http, https or
// file.
func ParseRepository(b []byte) (string, error) {
	var r Repository
	if err := strictjson.Decode(b, &r); err != nil {
		return "", fmt.Errorf("want {\"url\": \"https://...\"}: %w", err)
	}
	u, err := url.Parse(r.URL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http" && u.Scheme != "file") || (u.Scheme != "file" && u.Host == "") {
		return "", fmt.Errorf("url %q: want an http, https or file URL", r.URL)
	}
	return r.URL, nil
}

// ValidRoot accepts root metadata that verifies against itself, as the client will need it
// to: a technician hears of a bad root.json at the phone, not at the first update.
func ValidRoot(b []byte) error {
	if _, err := trustedmetadata.New(b); err != nil {
		return fmt.Errorf("not a TUF root that verifies: %w", err)
	}
	return nil
}
