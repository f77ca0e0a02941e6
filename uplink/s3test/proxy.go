package s3test

import (
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
)

// Fault is what the Proxy does to the next requests.
type Fault int

const (
	// Pass forwards requests.
	Pass Fault = iota
	// Fail500 answers 500 InternalError without forwarding.
	Fail500
	// Full507 answers 507 InsufficientStorage without forwarding, as a store whose disk is
	// full does.
	Full507
	// Stall reads the request and never answers (until the proxy closes or the fault
	// changes), as a store or a link that hangs does.
	Stall
	// Corrupt forwards requests with one byte of each non-empty body flipped, as a bad link
	// or bad memory would: the store must refuse them.
	Corrupt
)

// Proxy is a reverse proxy in front of a Server that injects faults and counts requests.
type Proxy struct {
	URL string

	srv     *http.Server
	backend *httputil.ReverseProxy

	mu     sync.Mutex // guards the fields below
	fault  Fault
	left   int           // requests the fault still applies to; -1: until changed
	stall  chan struct{} // closed when the stall ends
	counts map[string]int
	hook   func(r *http.Request, status int)
}

// NewProxy starts a proxy in front of target (http://host:port) and stops it when the test
// ends.
func NewProxy(t testing.TB, target string) *Proxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &Proxy{URL: "http://" + l.Addr().String(), backend: httputil.NewSingleHostReverseProxy(u),
		stall: make(chan struct{}), counts: make(map[string]int)}
	// The proxy's own errors (the server killed) go back as 502s without log noise.
	p.backend.ErrorLog = nil
	p.backend.ErrorHandler = func(w http.ResponseWriter, r *http.Request, err error) { w.WriteHeader(http.StatusBadGateway) }
	p.srv = &http.Server{Handler: p}
	go p.srv.Serve(l)
	t.Cleanup(func() {
		p.Set(Pass, 0)
		p.srv.Close()
	})
	return p
}

// Set makes the next n requests meet fault f (n < 0: every request until the next Set).
// Setting any fault ends a stall in progress.
func (p *Proxy) Set(f Fault, n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fault, p.left = f, n
	close(p.stall)
	p.stall = make(chan struct{})
}

// OnResponse calls fn after each forwarded request with the status the server gave.
func (p *Proxy) OnResponse(fn func(r *http.Request, status int)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.hook = fn
}

// Count is how many requests matched what: "PUT" counts object and part uploads, "PUT part"
// parts alone, "POST complete" completed multipart uploads.
func (p *Proxy) Count(what string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts[what]
}

func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	f := p.fault
	if p.left == 0 {
		f = Pass
	} else if p.left > 0 {
		p.left--
	}
	stall, hook := p.stall, p.hook
	p.mu.Unlock()
	switch f {
	case Fail500:
		io.Copy(io.Discard, r.Body)
		writeError(w, http.StatusInternalServerError, "InternalError", "injected failure")
		return
	case Full507:
		io.Copy(io.Discard, r.Body)
		writeError(w, http.StatusInsufficientStorage, "InsufficientStorage", "injected: no space left on the device")
		return
	case Stall:
		io.Copy(io.Discard, r.Body)
		select {
		case <-stall:
		case <-r.Context().Done():
		}
		return
	case Corrupt:
		if r.ContentLength > 0 {
			r.Body = &flipFirst{r: r.Body}
		}
	}
	rec := &statusWriter{ResponseWriter: w, status: http.StatusOK}
	p.backend.ServeHTTP(rec, r)
	p.mu.Lock()
	if rec.status/100 == 2 {
		switch {
		case r.Method == http.MethodPut && r.URL.Query().Has("partNumber"):
			p.counts["PUT part"]++
			p.counts["PUT"]++
		case r.Method == http.MethodPut:
			p.counts["PUT"]++
		case r.Method == http.MethodPost && r.URL.Query().Has("uploadId"):
			p.counts["POST complete"]++
		}
	}
	p.mu.Unlock()
	if hook != nil {
		hook(r, rec.status)
	}
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(status)
	io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>`+code+`</Code><Message>`+msg+`</Message></Error>`)
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (s *statusWriter) WriteHeader(code int) {
	s.status = code
	s.ResponseWriter.WriteHeader(code)
}

// flipFirst flips the first byte it reads.
type flipFirst struct {
	r       io.ReadCloser
	flipped bool
}

func (f *flipFirst) Read(b []byte) (int, error) {
	n, err := f.r.Read(b)
	if n > 0 && !f.flipped {
		b[0] ^= 0xff
		f.flipped = true
	}
	return n, err
}

func (f *flipFirst) Close() error { return f.r.Close() }

// IsPart reports whether r uploads a part of a multipart upload, and which.
func IsPart(r *http.Request) (int, bool) {
	n := r.URL.Query().Get("partNumber")
	if r.Method != http.MethodPut || n == "" {
		return 0, false
	}
	var k int
	for _, c := range n {
		if c < '0' || c > '9' {
			return 0, false
		}
		k = k*10 + int(c-'0')
	}
	return k, !strings.Contains(n, "-")
}
