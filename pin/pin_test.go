package pin

import (
	"bytes"
	"crypto/rand"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

type kat struct {
	name     string
	pin      string
	salt     string
	params   Params
	verifier string
}

// knownAnswers were produced by the argon2 reference implementation's command-line tool
// (Debian package argon2), e.g.
//
//	echo -n 1234 | argon2 wallphonesalt16b -id -k 19456 -t 2 -p 1 -l 32 -e
//
// The last is the argon2id vector from the reference implementation's own test suite.
func knownAnswers() []kat {
	return []kat{
		{
			"default params", "1234", "wallphonesalt16b", DefaultParams(),
			"$argon2id$v=19$m=19456,t=2,p=1$d2FsbHBob25lc2FsdDE2Yg$mS1Uf9UklKlGijryNtg+1vyb8/RqJ7Tr05xdqVEi5AY",
		},
		{
			"1 MiB", "1234", "wallphone-kat-salt", Params{Memory: 1024, Time: 2, Threads: 1, SaltLen: 18, KeyLen: 32},
			"$argon2id$v=19$m=1024,t=2,p=1$d2FsbHBob25lLWthdC1zYWx0$OWva1TF0JegOQeBb31uxfPBk62QJ79oSf732nF1iZwk",
		},
		{
			"two lanes, short key", "5678", "salt-for-two-lanes", Params{Memory: 64, Time: 3, Threads: 2, SaltLen: 18, KeyLen: 16},
			"$argon2id$v=19$m=64,t=3,p=2$c2FsdC1mb3ItdHdvLWxhbmVz$Fa84L8gFBdgRV6DWLX8Wcw",
		},
		{
			"four lanes, long key, minimum salt", "2468", "eight888", Params{Memory: 256, Time: 1, Threads: 4, SaltLen: 8, KeyLen: 64},
			"$argon2id$v=19$m=256,t=1,p=4$ZWlnaHQ4ODg$Z9g65i1IVqBT/n/bUbyqDVEPC8UXCymdmQenR1RQmeeOssWgLqUuFyw+ynH4SSr/ysyLedza/uDG01NXUoPLAg",
		},
		{
			"reference test suite", "password", "somesalt", Params{Memory: 65536, Time: 2, Threads: 1, SaltLen: 8, KeyLen: 32},
			"$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc",
		},
	}
}

func TestKnownAnswers(t *testing.T) {
	for _, k := range knownAnswers() {
		t.Run(k.name, func(t *testing.T) {
			if k.params.Memory > 32*1024 && testing.Short() {
				t.Skip("64 MiB hash in -short mode")
			}
			got, err := Hash(k.pin, k.params, strings.NewReader(k.salt))
			if err != nil {
				t.Fatal(err)
			}
			if got != k.verifier {
				t.Fatalf("Hash = %s\nwant   %s", got, k.verifier)
			}
			if ok, err := Verify(k.verifier, k.pin); !ok || err != nil {
				t.Fatalf("Verify(right PIN) = %v, %v", ok, err)
			}
			if ok, err := Verify(k.verifier, k.pin+"0"); ok || err != nil {
				t.Fatalf("Verify(wrong PIN) = %v, %v", ok, err)
			}
			v, err := Parse(k.verifier)
			if err != nil {
				t.Fatal(err)
			}
			if v.Params != k.params || string(v.Salt) != k.salt || v.String() != k.verifier {
				t.Fatalf("Parse = %+v", v)
			}
		})
	}
}

func TestRoundTrip(t *testing.T) {
	p := TestParams()
	a, err := Hash("1234", p, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b, err := Hash("1234", p, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Fatal("two verifiers of one PIN are equal: the salt is not fresh")
	}
	if strings.Contains(a, "1234") {
		t.Fatalf("verifier %s holds the PIN", a)
	}
	for _, v := range []string{a, b} {
		for pin, want := range map[string]bool{"1234": true, "1235": false, "4321": false, "12340": false, "123": false, "": false} {
			if ok, err := Verify(v, pin); ok != want || err != nil {
				t.Errorf("Verify(%s, %q) = %v, %v; want %v", v, pin, ok, err, want)
			}
		}
	}
}

func TestHashErrors(t *testing.T) {
	if _, err := Hash("", TestParams(), rand.Reader); !errors.Is(err, ErrEmptyPIN) {
		t.Errorf("empty PIN: %v", err)
	}
	bad := TestParams()
	bad.Memory = MaxMemory + 1
	if _, err := Hash("1234", bad, rand.Reader); !errors.Is(err, ErrParams) {
		t.Errorf("huge memory: %v", err)
	}
	if _, err := Hash("1234", TestParams(), strings.NewReader("short")); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("short salt source: %v", err)
	}
	boom := errors.New("boom")
	if _, err := Hash("1234", TestParams(), iotest.ErrReader(boom)); !errors.Is(err, boom) {
		t.Errorf("failing salt source: %v", err)
	}
}

func TestParamsBounds(t *testing.T) {
	if d := DefaultParams(); d != (Params{Memory: 19456, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}) {
		t.Errorf("DefaultParams = %+v, want OWASP's argon2id minimum", d)
	}
	for _, p := range []Params{DefaultParams(), TestParams()} {
		if err := p.Validate(); err != nil {
			t.Errorf("%+v: %v", p, err)
		}
	}
	base := TestParams()
	for name, mutate := range map[string]func(*Params){
		"memory over 256 MiB": func(p *Params) { p.Memory = MaxMemory + 1 },
		"memory under 8 KiB":  func(p *Params) { p.Memory = 7 },
		"memory under 8/lane": func(p *Params) { p.Threads, p.Memory = 2, 15 },
		"no passes":           func(p *Params) { p.Time = 0 },
		"17 passes":           func(p *Params) { p.Time = MaxTime + 1 },
		"no lanes":            func(p *Params) { p.Threads = 0 },
		"17 lanes":            func(p *Params) { p.Threads, p.Memory = MaxThreads+1, 1024 },
		"salt 7 bytes":        func(p *Params) { p.SaltLen = 7 },
		"salt 65 bytes":       func(p *Params) { p.SaltLen = MaxSaltLen + 1 },
		"key 15 bytes":        func(p *Params) { p.KeyLen = 15 },
		"key 65 bytes":        func(p *Params) { p.KeyLen = MaxKeyLen + 1 },
	} {
		p := base
		mutate(&p)
		if err := p.Validate(); !errors.Is(err, ErrParams) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// malformed are verifiers a policy file might carry by mistake or by malice.
func malformed() []struct {
	name, verifier string
	err            error
} {
	const salt, hash = "d2FsbHBob25lc2FsdDE2Yg", "mS1Uf9UklKlGijryNtg+1vyb8/RqJ7Tr05xdqVEi5AY"
	ok := func(params string) string { return "$argon2id$v=19$" + params + "$" + salt + "$" + hash }
	return []struct {
		name, verifier string
		err            error
	}{
		{"empty", "", ErrMalformed},
		{"plain pin", "1234", ErrMalformed},
		{"argon2i", "$argon2i$v=19$m=19456,t=2,p=1$" + salt + "$" + hash, ErrMalformed},
		{"argon2d", "$argon2d$v=19$m=19456,t=2,p=1$" + salt + "$" + hash, ErrMalformed},
		{"bcrypt", "$2b$12$R9h/cIPz0gi.URNNX3kh2OPST9/PgBkqquzi.Ss7KIUgO2t0jWMUW", ErrMalformed},
		{"version 16", "$argon2id$v=16$m=19456,t=2,p=1$" + salt + "$" + hash, ErrVersion},
		{"no version", "$argon2id$m=19456,t=2,p=1$" + salt + "$" + hash, ErrMalformed},
		{"version 019", "$argon2id$v=019$m=19456,t=2,p=1$" + salt + "$" + hash, ErrVersion},
		{"trailing dollar", ok("m=19456,t=2,p=1") + "$", ErrMalformed},
		{"leading space", " " + ok("m=19456,t=2,p=1"), ErrMalformed},
		{"trailing newline", ok("m=19456,t=2,p=1") + "\n", ErrMalformed},
		{"params out of order", ok("t=2,m=19456,p=1"), ErrMalformed},
		{"leading zero", ok("m=019456,t=2,p=1"), ErrMalformed},
		{"plus sign", ok("m=+19456,t=2,p=1"), ErrMalformed},
		{"spaces in params", ok("m=19456, t=2, p=1"), ErrMalformed},
		{"empty value", ok("m=,t=2,p=1"), ErrMalformed},
		{"keyid", ok("m=19456,t=2,p=1,keyid=abc"), ErrMalformed},
		{"missing p", ok("m=19456,t=2"), ErrMalformed},
		{"memory 256 MiB + 1", ok("m=262145,t=2,p=1"), ErrParams},
		{"memory 4 GiB", ok("m=4194304,t=2,p=1"), ErrParams},
		{"memory overflows uint32", ok("m=4294967296,t=2,p=1"), ErrParams},
		{"memory under 8 per lane", ok("m=15,t=2,p=2"), ErrParams},
		{"time 0", ok("m=19456,t=0,p=1"), ErrParams},
		{"time 17", ok("m=19456,t=17,p=1"), ErrParams},
		{"time huge", ok("m=19456,t=4294967295,p=1"), ErrParams},
		{"lanes 0", ok("m=19456,t=2,p=0"), ErrParams},
		{"lanes 17", ok("m=19456,t=2,p=17"), ErrParams},
		{"lanes overflow uint8", ok("m=19456,t=2,p=256"), ErrParams},
		{"salt 7 bytes", "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbA$" + hash, ErrParams},
		{"empty salt", "$argon2id$v=19$m=19456,t=2,p=1$$" + hash, ErrParams},
		{"salt 65 bytes", "$argon2id$v=19$m=19456,t=2,p=1$" + strings.Repeat("A", 87) + "$" + hash, ErrParams},
		{"key 15 bytes", "$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$AAAAAAAAAAAAAAAAAAAA", ErrParams},
		{"empty key", "$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$", ErrParams},
		{"padded base64", "$argon2id$v=19$m=19456,t=2,p=1$" + salt + "==$" + hash, ErrMalformed},
		{"url base64", "$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$" + strings.NewReplacer("+", "-", "/", "_").Replace(hash), ErrMalformed},
		{"non-zero trailing bits", "$argon2id$v=19$m=19456,t=2,p=1$" + salt[:len(salt)-1] + "h$" + hash, ErrMalformed},
		{"not base64", "$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$****", ErrMalformed},
		{"huge", ok("m=19456,t=2,p=1") + strings.Repeat("A", 1<<20), ErrMalformed},
	}
}

func TestMalformed(t *testing.T) {
	for _, c := range malformed() {
		t.Run(c.name, func(t *testing.T) {
			if _, err := Parse(c.verifier); !errors.Is(err, c.err) {
				t.Fatalf("Parse: got %v, want %v", err, c.err)
			}
			ok, err := Verify(c.verifier, "1234")
			if ok || !errors.Is(err, c.err) {
				t.Fatalf("Verify: got %v, %v; want false, %v", ok, err, c.err)
			}
		})
	}
}

// seeds are the fuzz corpus: the known answers and the malformed verifiers.
func seeds() []string {
	var s []string
	for _, k := range knownAnswers() {
		s = append(s, k.verifier)
	}
	for _, m := range malformed() {
		s = append(s, m.verifier)
	}
	return s
}

func TestSeedCorpus(t *testing.T) {
	if n := len(seeds()); n < 30 {
		t.Fatalf("fuzz seed corpus has %d entries", n)
	}
}

// FuzzParse checks that whatever parses is within bounds and has exactly one spelling.
func FuzzParse(f *testing.F) {
	for _, s := range seeds() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := Parse(s)
		if err != nil {
			if !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrVersion) && !errors.Is(err, ErrParams) {
				t.Fatalf("error wraps no sentinel: %v", err)
			}
			return
		}
		if err := v.Params.Validate(); err != nil {
			t.Fatalf("parsed out-of-bounds params: %v", err)
		}
		if v.String() != s {
			t.Fatalf("Parse(%q).String() = %q", s, v.String())
		}
	})
}

// FuzzVerify checks that Verify never panics and agrees with a fresh hash of the same PIN.
func FuzzVerify(f *testing.F) {
	for _, s := range seeds() {
		f.Add(s, "1234")
	}
	f.Fuzz(func(t *testing.T, verifier, pin string) {
		v, err := Parse(verifier)
		if err != nil {
			if ok, verr := Verify(verifier, pin); ok || verr == nil {
				t.Fatalf("Verify of unparsable verifier = %v, %v", ok, verr)
			}
			return
		}
		if uint64(v.Params.Memory)*uint64(v.Params.Time) > 4096 {
			return // in bounds, but too slow to hash at fuzzing speed
		}
		if _, err := Verify(verifier, pin); err != nil {
			t.Fatal(err)
		}
		if pin == "" {
			return
		}
		again, err := Hash(pin, v.Params, bytes.NewReader(v.Salt))
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := Verify(again, pin); !ok || err != nil {
			t.Fatalf("Verify(Hash(%q)) = %v, %v", pin, ok, err)
		}
	})
}

func BenchmarkVerifyDefault(b *testing.B) {
	v, err := Hash("1234", DefaultParams(), rand.Reader)
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if ok, err := Verify(v, "1234"); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}
