package agent

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/wallphone/wallphone/audit"
	"github.com/wallphone/wallphone/provisioning"
	"github.com/wallphone/wallphone/recording/recipients"
	"github.com/wallphone/wallphone/trunk/siptrunk"
	"github.com/wallphone/wallphone/tufclient"
	"github.com/wallphone/wallphone/uplink"
)

// ConfValidators are the items an enrolment may install in conf/, each checked by the parser
// of the package that reads it, so that a technician hears of a bad item at the phone.
func ConfValidators() map[string]func([]byte) error {
	return map[string]func([]byte) error{
		provisioning.RootFile:       tufclient.ValidRoot,
		provisioning.RepositoryFile: func(b []byte) error { _, err := tufclient.ParseRepository(b); return err },
		provisioning.VaultFile:      func(b []byte) error { _, err := uplink.ParseConfig(b); return err },
		provisioning.SIPFile:        func(b []byte) error { _, err := siptrunk.Parse(b); return err },
		provisioning.RecipientsFile: func(b []byte) error { _, err := recipients.ParseFile(b); return err },
		provisioning.AuditKeyFile:   func(b []byte) error { _, err := audit.ParseKey(b); return err },
	}
}

// readRecipients reads the pinned recording recipients; a missing file pins none, and then
// no policy is accepted (checkPolicy).
func readRecipients(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out, err := recipients.ParseFile(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return out, nil
}

func readRepository(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	u, err := tufclient.ParseRepository(b)
	if err != nil {
		return "", fmt.Errorf("%s: %w", path, err)
	}
	return u, nil
}
