// Package s3test runs a real S3-compatible server (the Versity S3 Gateway, installed by
// scripts/versitygw.sh) on loopback for tests: a bucket, its root user, and a phone user that
// a bucket policy lets write and nothing else. Tests kill it with SIGKILL and start it again
// on the same port and directories.
package s3test

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/wallphone/wallphone/uplink"
)

// EnvBinary names the versitygw binary. make test sets it; a test run that sets it to a
// missing file fails. Unset, the versioned binary in Go's bin directory is used if there,
// and the test is skipped otherwise.
const EnvBinary = "WALLPHONE_VERSITYGW"

// Version is the pinned versitygw version.
const Version = "v1.8.0"

// Credentials of the server's users.
const (
	RootKey     = "wallphoneroot"
	RootSecret  = "wallphoneroot-secret-0123456789"
	PhoneKey    = "phone1"
	PhoneSecret = "phone1-secret-0123456789abcdef"
	Bucket      = "vault"
)

// WriteOnlyPolicy is the bucket policy that lets the phone user write objects (and finish or
// abandon its multipart uploads) and nothing else.
func WriteOnlyPolicy(bucket, user string) string {
	return fmt.Sprintf(`{
  "Version": "2012-10-17",
  "Statement": [{
    "Effect": "Allow",
    "Principal": {"AWS": [%q]},
    "Action": ["s3:PutObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"],
    "Resource": ["arn:aws:s3:::%s/*"]
  }]
}`, user, bucket)
}

// Server is a running versitygw.
type Server struct {
	bin, dir    string
	data        string // the objects' directory
	addr, admin string

	mu  sync.Mutex // guards cmd
	cmd *exec.Cmd
}

// Binary finds versitygw or skips (fails, under make test) the test.
func Binary(t testing.TB) string {
	t.Helper()
	if p := os.Getenv(EnvBinary); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("versitygw: %s=%s: %v (scripts/versitygw.sh installs it)", EnvBinary, p, err)
		}
		return p
	}
	out, err := exec.Command("go", "env", "GOPATH").Output()
	if err == nil {
		p := filepath.Join(strings.TrimSpace(string(out)), "bin", "versitygw-"+Version)
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Skipf("versitygw not installed: run scripts/versitygw.sh, or make test, which does")
	return ""
}

// Start starts a server in a temporary directory with the bucket and the phone user made,
// and stops it when the test ends.
func Start(t testing.TB) *Server {
	t.Helper()
	return StartIn(t, "")
}

// StartIn is Start with the objects kept in dataDir ("" for one in the test's temporary
// directory), e.g. a small file system that fills up.
func StartIn(t testing.TB, dataDir string) *Server {
	t.Helper()
	s := &Server{bin: Binary(t), dir: t.TempDir(), data: dataDir, addr: freeAddr(t), admin: freeAddr(t)}
	if s.data == "" {
		s.data = filepath.Join(s.dir, "data")
	}
	for _, d := range []string{filepath.Join(s.dir, "iam"), s.data} {
		if err := os.MkdirAll(d, 0o700); err != nil {
			t.Fatal(err)
		}
	}
	s.Restart(t)
	t.Cleanup(s.Kill)
	ctx := context.Background()
	root := s.Root(t)
	if err := root.MakeBucket(ctx, Bucket, minio.MakeBucketOptions{}); err != nil {
		t.Fatalf("make bucket: %v", err)
	}
	out, err := exec.Command(s.bin, "admin", "-a", RootKey, "-s", RootSecret, "--er", "http://"+s.admin,
		"create-user", "--access", PhoneKey, "--secret", PhoneSecret, "--role", "user").CombinedOutput()
	if err != nil {
		t.Fatalf("versitygw create-user: %v: %s", err, out)
	}
	if err := root.SetBucketPolicy(ctx, Bucket, WriteOnlyPolicy(Bucket, PhoneKey)); err != nil {
		t.Fatalf("bucket policy: %v", err)
	}
	return s
}

// DataDir is where the server keeps the bucket's objects (bucket/key as files).
func (s *Server) DataDir() string { return s.data }

// Endpoint is the server's URL.
func (s *Server) Endpoint() string { return "http://" + s.addr }

// Addr is the server's host:port.
func (s *Server) Addr() string { return s.addr }

// Restart starts the server (again) on the same port and directories and waits until it
// accepts connections.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	cmd := exec.Command(s.bin, "--port", s.addr, "--admin-port", s.admin,
		"--iam-dir", filepath.Join(s.dir, "iam"), "posix", s.data)
	cmd.Env = append(os.Environ(), "ROOT_ACCESS_KEY="+RootKey, "ROOT_SECRET_KEY="+RootSecret)
	log, err := os.OpenFile(filepath.Join(s.dir, "server.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatalf("start versitygw: %v", err)
	}
	s.cmd = cmd
	for _, a := range []string{s.addr, s.admin} {
		deadline := time.Now().Add(20 * time.Second)
		for {
			c, err := net.DialTimeout("tcp", a, time.Second)
			if err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				b, _ := os.ReadFile(filepath.Join(s.dir, "server.log"))
				t.Fatalf("versitygw did not start listening on %s: %s", a, b)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// Kill kills the server with SIGKILL and waits for it to go.
func (s *Server) Kill() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	_ = s.cmd.Wait()
	s.cmd = nil
}

// Root is a client with the root credentials: it may do anything.
func (s *Server) Root(t testing.TB) *minio.Client {
	return s.client(t, RootKey, RootSecret)
}

// Phone is a client with the phone's write-only credentials.
func (s *Server) Phone(t testing.TB) *minio.Client {
	return s.client(t, PhoneKey, PhoneSecret)
}

func (s *Server) client(t testing.TB, key, secret string) *minio.Client {
	t.Helper()
	c, err := minio.New(s.addr, &minio.Options{Creds: credentials.NewStaticV4(key, secret, ""), Region: "us-east-1", BucketLookup: minio.BucketLookupPath})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// PhoneConfig is the phone's vault.json for a server reached at endpoint (the server's own,
// or a proxy's in front of it).
func PhoneConfig(endpoint string) uplink.Config {
	return uplink.Config{Endpoint: endpoint, Bucket: Bucket, AccessKey: PhoneKey, SecretKey: PhoneSecret}
}

// AdminConfig is the back office's vault.json for this server.
func (s *Server) AdminConfig() uplink.Config {
	return uplink.Config{Endpoint: s.Endpoint(), Bucket: Bucket, AccessKey: RootKey, SecretKey: RootSecret}
}

// Objects returns every object in the bucket: key → bytes, read with the root credentials.
func (s *Server) Objects(t testing.TB) map[string][]byte {
	t.Helper()
	ctx := context.Background()
	root := s.Root(t)
	out := make(map[string][]byte)
	for o := range root.ListObjects(ctx, Bucket, minio.ListObjectsOptions{Recursive: true}) {
		if o.Err != nil {
			t.Fatalf("list: %v", o.Err)
		}
		if _, dup := out[o.Key]; dup {
			t.Fatalf("object %s listed twice", o.Key)
		}
		r, err := root.GetObject(ctx, Bucket, o.Key, minio.GetObjectOptions{})
		if err != nil {
			t.Fatal(err)
		}
		b, err := readAll(r)
		if err != nil {
			t.Fatalf("get %s: %v", o.Key, err)
		}
		out[o.Key] = b
	}
	return out
}

func readAll(r *minio.Object) ([]byte, error) {
	defer r.Close()
	return io.ReadAll(r)
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
