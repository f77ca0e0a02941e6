package registry

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// The benchmarks measure a realistic registry of 5,000,000 US numbers (200,000 under
// -short) in its compact form beside two baselines: one bbolt key per number, and a Go map.
// The generated files are cached in the temporary directory, keyed by their parameters.
//
//	BenchmarkRegistryLookup/{compact,bbolt,map}   ns per lookup, p50-ns, p99-ns (half hits)
//	BenchmarkRegistryInstall/{compact,bbolt,map}  Open+verify+CheckRemovals / writing the
//	                                              bbolt file / filling the map; disk bytes/number
//	BenchmarkRegistryMemory/{compact,bbolt,map}   resident memory added by an installed
//	                                              registry after 1M lookups, in a child process
//	BenchmarkRegistryDelta/{delta,full}           bytes a phone downloads for a 1% change
//	                                              (1% of the numbers removed, 1% added)

const (
	// benchGenerator names the generator's code in the cache key: change it with the code.
	benchGenerator = 2
	benchSeed      = 20261122
	changeRate     = 100 // one in changeRate numbers removed, as many added
	queries        = 1_000_000
)

// areaCodes are real US area codes, in the order of a rough weight: lawyers cluster in the
// big cities, so the first codes get more numbers.
var areaCodes = strings.Fields(`212 213 312 202 415 713 214 305 404 617 646 718 310 512 602 206 303 215 612 702
	619 314 816 503 412 216 414 504 615 704 919 813 407 954 561 786 904 210 817 972 469 281 832
	201 973 908 732 856 609 610 484 267 410 443 301 240 703 571 804 757 540 434 919 336 910 252
	843 864 803 706 770 678 912 229 205 256 334 251 601 662 228 901 731 423 865 502 859 270 606
	513 614 937 419 440 330 234 216 248 313 586 734 810 517 616 269 989 906 317 765 574 260 219
	773 847 630 708 815 217 309 618 262 608 715 920 651 763 952 218 320 507 515 319 563 641 712
	402 308 316 620 785 913 405 918 580 479 501 870 318 337 225 985 806 915 432 325 254 361 830
	936 903 940 979 956 719 970 720 801 435 505 575 480 520 623 928 775 702 208 406 307 701 605
	509 253 360 425 541 971 907 808 916 530 559 661 805 818 626 562 714 949 760 858 909 951 707
	925 510 408 650 831 209 603 802 207 413 508 781 978 860 203 401 315 518 585 607 716 845 914
	631 516 347 917 570 717 724 814 304 302 239 321 352 386 727 772 850 863 941`)

// benchFixture is the generated registry: v1, and v2 with 1% removed (listed) and 1% added.
type benchFixture struct {
	n          int
	dir        string
	v1, v2     string // registry files
	bolt       string // v2 as one bbolt key per number
	queries    string // uint64 queries, half of them numbers of v2
	v2nums, qs []uint64
	v2kinds    []uint8
	queryText  []string
	genTime    time.Duration
	lookupOnce sync.Map // name → [2]float64 p50, p99
}

var (
	fixtureOnce sync.Once
	fixture     *benchFixture
	fixtureErr  error
)

func benchN() int {
	if testing.Short() {
		return 200_000
	}
	return 5_000_000
}

func getFixture(b *testing.B) *benchFixture {
	fixtureOnce.Do(func() { fixture, fixtureErr = makeFixture(benchN()) })
	if fixtureErr != nil {
		b.Fatal(fixtureErr)
	}
	return fixture
}

// usNumber draws a number in a weighted area code.
func usNumber(r *rand.Rand) uint64 {
	// Weight ~ 1/(rank+20): the first codes get a few times the numbers of the last.
	var i int
	for {
		i = r.IntN(len(areaCodes))
		if r.Float64() < 20/float64(i+20) {
			break
		}
	}
	npa, _ := strconv.ParseUint(areaCodes[i], 10, 64)
	nxx := 200 + r.Uint64N(800)
	return 10_000_000_000 + npa*10_000_000 + nxx*10_000 + r.Uint64N(10_000)
}

// kindOf gives a number its kind, deterministically: mostly attorneys.
func kindOf(v uint64) uint8 {
	h := (v * 0x9E3779B97F4A7C15) >> 54 // 0..1023
	switch {
	case h < 820:
		return 0 // attorney
	case h < 880:
		return 1 // public defender
	case h < 930:
		return 2 // court
	case h < 940:
		return 3 // consulate
	case h < 950:
		return 4 // hotline
	}
	return 5
}

func distinct(r *rand.Rand, n int, avoid []uint64) []uint64 {
	out := make([]uint64, 0, n+n/50)
	for len(out) < n {
		for len(out) < cap(out) {
			out = append(out, usNumber(r))
		}
		slices.Sort(out)
		out = slices.Compact(out)
		if avoid != nil {
			out = slices.DeleteFunc(out, func(v uint64) bool { _, ok := slices.BinarySearch(avoid, v); return ok })
		}
	}
	// Drop the surplus at random places, in one pass, so the set stays uniform.
	drop := make([]bool, len(out))
	for surplus := len(out) - n; surplus > 0; {
		if i := r.IntN(len(out)); !drop[i] {
			drop[i] = true
			surplus--
		}
	}
	kept := out[:0]
	for i, v := range out {
		if !drop[i] {
			kept = append(kept, v)
		}
	}
	return kept
}

func kindSources(nums []uint64) [numKinds]source {
	var per [numKinds][]uint64
	for _, v := range nums {
		per[kindOf(v)] = append(per[kindOf(v)], v)
	}
	var out [numKinds]source
	for i := range per {
		out[i] = &sliceSource{per[i]}
	}
	return out
}

func makeFixture(n int) (*benchFixture, error) {
	f := &benchFixture{n: n, dir: filepath.Join(os.TempDir(), fmt.Sprintf("wallphone-registry-bench-%d-%d-%d-g%d", n, benchSeed, changeRate, benchGenerator))}
	f.v1, f.v2 = filepath.Join(f.dir, "v1.reg"), filepath.Join(f.dir, "v2.reg")
	f.bolt, f.queries = filepath.Join(f.dir, "v2.bolt"), filepath.Join(f.dir, "queries")
	start := time.Now()
	r := rand.New(rand.NewPCG(benchSeed, 1))
	v1 := distinct(r, n, nil)
	gone := make([]uint64, 0, n/changeRate)
	keep := make([]uint64, 0, n)
	for _, v := range v1 {
		if r.IntN(changeRate) == 0 && len(gone) < n/changeRate {
			gone = append(gone, v)
		} else {
			keep = append(keep, v)
		}
	}
	added := distinct(r, len(gone), v1)
	v2 := slices.Concat(keep, added)
	slices.Sort(v2)
	f.v2nums = v2
	for _, v := range v2 {
		f.v2kinds = append(f.v2kinds, kindOf(v))
	}
	// Queries: half numbers of v2, half numbers in the same area codes that it lacks.
	misses := distinct(r, queries/2, v2)
	for i := range queries / 2 {
		f.qs = append(f.qs, v2[r.IntN(len(v2))], misses[i])
	}
	for _, q := range f.qs {
		f.queryText = append(f.queryText, numberString(q))
	}
	if cached(f.v1) && cached(f.v2) {
		f.genTime = time.Since(start)
		return f, nil
	}
	if err := os.MkdirAll(f.dir, 0o755); err != nil {
		return nil, err
	}
	c1 := contents{version: 1, logFrom: 1, kinds: kindSources(v1)}
	c2 := contents{version: 2, logFrom: 1, kinds: kindSources(v2),
		log: []logContents{{version: 2, numbers: &sliceSource{gone}}}}
	for path, c := range map[string]*contents{f.v1: &c1, f.v2: &c2} {
		b, err := c.encode()
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(path, b, 0o644); err != nil {
			return nil, err
		}
	}
	q := make([]byte, 0, 8*len(f.qs))
	for _, v := range f.qs {
		q = binary.LittleEndian.AppendUint64(q, v)
	}
	if err := os.WriteFile(f.queries, q, 0o644); err != nil {
		return nil, err
	}
	f.genTime = time.Since(start)
	return f, nil
}

// cached reports whether a registry file generated earlier is there and still readable (an
// older layout is generated again).
func cached(path string) bool {
	s, err := Open(path)
	if err != nil {
		return false
	}
	s.Close()
	return true
}

// buildBolt writes one key per number (8 bytes big-endian, value the kind), as a phone
// keeping its registry in bbolt would.
func buildBolt(path string, nums []uint64, kinds []uint8) error {
	os.Remove(path)
	db, err := bolt.Open(path, 0o600, &bolt.Options{NoFreelistSync: true})
	if err != nil {
		return err
	}
	defer db.Close()
	const batch = 250_000
	for i := 0; i < len(nums); i += batch {
		err := db.Update(func(tx *bolt.Tx) error {
			bk, err := tx.CreateBucketIfNotExists([]byte("numbers"))
			if err != nil {
				return err
			}
			bk.FillPercent = 1
			for j := i; j < min(i+batch, len(nums)); j++ {
				var k [8]byte
				binary.BigEndian.PutUint64(k[:], nums[j])
				if err := bk.Put(k[:], []byte{kinds[j]}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	return nil
}

func (f *benchFixture) boltPath(b *testing.B) string {
	if _, err := os.Stat(f.bolt); err != nil {
		if err := buildBolt(f.bolt+".tmp", f.v2nums, f.v2kinds); err != nil {
			b.Fatal(err)
		}
		if err := os.Rename(f.bolt+".tmp", f.bolt); err != nil {
			b.Fatal(err)
		}
	}
	return f.bolt
}

func boltLookup(db *bolt.DB, e164 string) (Kind, bool) {
	v, ok := numberValue(e164)
	if !ok {
		return "", false
	}
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], v)
	var kind Kind
	db.View(func(tx *bolt.Tx) error {
		if got := tx.Bucket([]byte("numbers")).Get(k[:]); len(got) == 1 {
			kind = kindOrder[got[0]]
		}
		return nil
	})
	return kind, kind != ""
}

// lookups runs lookup over the queries in a loop and reports percentiles measured once
// over every query, timed one by one (the clock read, about 20-40 ns, is included).
func (f *benchFixture) lookups(b *testing.B, name string, lookup func(string) bool) {
	hits := 0
	for i, q := range f.queryText {
		if lookup(q) != (i%2 == 0) {
			b.Fatalf("%s: query %d (%s) answered wrong", name, i, q)
		}
	}
	pct, ok := f.lookupOnce.Load(name)
	if !ok {
		times := make([]time.Duration, len(f.queryText))
		for i, q := range f.queryText {
			t0 := time.Now()
			lookup(q)
			times[i] = time.Since(t0)
		}
		slices.Sort(times)
		pct = [3]float64{float64(times[len(times)/2]), float64(times[len(times)*99/100]), float64(times[len(times)*999/1000])}
		f.lookupOnce.Store(name, pct)
	}
	b.ResetTimer()
	i := 0
	for b.Loop() {
		if lookup(f.queryText[i]) {
			hits++
		}
		i++
		if i == len(f.queryText) {
			i = 0
		}
	}
	p := pct.([3]float64)
	b.ReportMetric(p[0], "p50-ns")
	b.ReportMetric(p[1], "p99-ns")
	b.ReportMetric(p[2], "p99.9-ns")
}

func BenchmarkRegistryLookup(b *testing.B) {
	f := getFixture(b)
	b.Run("compact", func(b *testing.B) {
		s, err := Open(f.v2)
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		f.lookups(b, "compact", func(q string) bool { _, ok := s.Lookup(q); return ok })
	})
	b.Run("bbolt", func(b *testing.B) {
		db, err := bolt.Open(f.boltPath(b), 0o600, &bolt.Options{ReadOnly: true})
		if err != nil {
			b.Fatal(err)
		}
		defer db.Close()
		f.lookups(b, "bbolt", func(q string) bool { _, ok := boltLookup(db, q); return ok })
	})
	b.Run("map", func(b *testing.B) {
		m := make(map[uint64]Kind, len(f.v2nums))
		for i, v := range f.v2nums {
			m[v] = kindOrder[f.v2kinds[i]]
		}
		f.lookups(b, "map", func(q string) bool {
			v, ok := numberValue(q)
			if !ok {
				return false
			}
			_, ok = m[v]
			return ok
		})
	})
}

func BenchmarkRegistryInstall(b *testing.B) {
	f := getFixture(b)
	b.Logf("%d numbers generated (and cached in %s) in %v", f.n, f.dir, f.genTime.Round(time.Millisecond))
	b.Run("compact", func(b *testing.B) {
		old, err := Open(f.v1)
		if err != nil {
			b.Fatal(err)
		}
		defer old.Close()
		var size int
		for b.Loop() {
			s, err := Open(f.v2)
			if err != nil {
				b.Fatal(err)
			}
			if err := CheckRemovals(old, s); err != nil {
				b.Fatal(err)
			}
			size = s.Size()
			s.Close()
		}
		b.ReportMetric(float64(size)/float64(len(f.v2nums)), "disk-B/number")
		b.ReportMetric(float64(size)/1e6, "disk-MB")
	})
	b.Run("bbolt", func(b *testing.B) {
		path := filepath.Join(b.TempDir(), "install.bolt")
		for b.Loop() {
			if err := buildBolt(path, f.v2nums, f.v2kinds); err != nil {
				b.Fatal(err)
			}
		}
		fi, err := os.Stat(path)
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(fi.Size())/float64(len(f.v2nums)), "disk-B/number")
		b.ReportMetric(float64(fi.Size())/1e6, "disk-MB")
	})
	b.Run("map", func(b *testing.B) {
		for b.Loop() {
			s, err := Open(f.v2)
			if err != nil {
				b.Fatal(err)
			}
			m := make(map[uint64]Kind, s.numbers.n)
			it := s.all()
			for v, k, ok := it.next(); ok; v, k, ok = it.next() {
				m[v] = kindOrder[k]
			}
			s.Close()
		}
	})
}

func BenchmarkRegistryDelta(b *testing.B) {
	f := getFixture(b)
	old, err := Open(f.v1)
	if err != nil {
		b.Fatal(err)
	}
	defer old.Close()
	next, err := Open(f.v2)
	if err != nil {
		b.Fatal(err)
	}
	defer next.Close()
	b.Run("delta", func(b *testing.B) {
		var d, out bytes.Buffer
		for b.Loop() {
			d.Reset()
			out.Reset()
			if err := WriteDelta(&d, old, next); err != nil {
				b.Fatal(err)
			}
			if err := ApplyDelta(&out, old, d.Bytes()); err != nil {
				b.Fatal(err)
			}
		}
		if !bytes.Equal(out.Bytes(), next.data) {
			b.Fatal("delta did not rebuild v2")
		}
		b.ReportMetric(float64(d.Len()), "download-B")
		b.ReportMetric(100*float64(d.Len())/float64(next.Size()), "%full")
	})
	b.Run("full", func(b *testing.B) {
		for b.Loop() {
			if _, err := Parse(next.data); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(next.Size()), "download-B")
		b.ReportMetric(100, "%full")
	})
}

// memReport is what the child process measures.
type memReport struct {
	RSSBefore, RSSAfter   int64 // bytes
	HeapBefore, HeapAfter uint64
	Lookups, Hits         int
}

const childEnv = "WALLPHONE_REGISTRY_MEM_CHILD"

func BenchmarkRegistryMemory(b *testing.B) {
	f := getFixture(b)
	for _, mode := range []string{"compact", "bbolt", "map"} {
		b.Run(mode, func(b *testing.B) {
			path := f.v2
			if mode == "bbolt" {
				path = f.boltPath(b)
			}
			var rep memReport
			for b.Loop() {
				cmd := exec.Command(os.Args[0], "-test.run=^TestRegistryMemoryChild$", "-test.v")
				cmd.Env = append(os.Environ(), childEnv+"="+mode+","+path+","+f.queries)
				out, err := cmd.CombinedOutput()
				if err != nil {
					b.Fatalf("child: %v\n%s", err, out)
				}
				line := out
				if i := bytes.Index(out, []byte("MEM ")); i >= 0 {
					line = out[i+4:]
					line = line[:bytes.IndexByte(line, '\n')]
				}
				if err := json.Unmarshal(line, &rep); err != nil {
					b.Fatalf("child said %s: %v", out, err)
				}
			}
			if rep.Hits != rep.Lookups/2 {
				b.Fatalf("child: %d hits of %d lookups", rep.Hits, rep.Lookups)
			}
			b.ReportMetric(float64(rep.RSSAfter-rep.RSSBefore)/1e6, "rss-MB")
			b.ReportMetric((float64(rep.HeapAfter)-float64(rep.HeapBefore))/1e6, "heap-MB")
		})
	}
}

// TestRegistryMemoryChild is the child process of BenchmarkRegistryMemory: it installs a
// registry, runs every query, and reports how much its resident memory and heap grew.
func TestRegistryMemoryChild(t *testing.T) {
	arg := os.Getenv(childEnv)
	if arg == "" {
		t.Skip("run by BenchmarkRegistryMemory")
	}
	parts := strings.Split(arg, ",")
	mode, path := parts[0], parts[1]
	qb, err := os.ReadFile(parts[2])
	if err != nil {
		t.Fatal(err)
	}
	qs := make([]string, 0, len(qb)/8)
	for i := 0; i+8 <= len(qb); i += 8 {
		qs = append(qs, numberString(binary.LittleEndian.Uint64(qb[i:])))
	}
	qb = nil
	var rep memReport
	measure := func(rss *int64, heap *uint64) {
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		*heap = ms.HeapInuse
		st, err := os.ReadFile("/proc/self/status")
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(st), "\n") {
			if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
				*rss = kb * 1024
			}
		}
	}
	measure(&rep.RSSBefore, &rep.HeapBefore)
	var lookup func(string) bool
	switch mode {
	case "compact":
		s, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		lookup = func(q string) bool { _, ok := s.Lookup(q); return ok }
	case "bbolt":
		db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		lookup = func(q string) bool { _, ok := boltLookup(db, q); return ok }
	case "map":
		s, err := Open(path)
		if err != nil {
			t.Fatal(err)
		}
		m := make(map[uint64]Kind)
		it := s.all()
		for v, k, ok := it.next(); ok; v, k, ok = it.next() {
			m[v] = kindOrder[k]
		}
		s.Close()
		lookup = func(q string) bool {
			v, _ := numberValue(q)
			_, ok := m[v]
			return ok
		}
		defer runtime.KeepAlive(m)
	}
	for _, q := range qs {
		rep.Lookups++
		if lookup(q) {
			rep.Hits++
		}
	}
	measure(&rep.RSSAfter, &rep.HeapAfter)
	runtime.KeepAlive(qs) // measured in both, so that only the registry counts
	out, _ := json.Marshal(rep)
	fmt.Printf("MEM %s\n", out)
}
