package spool

import (
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	bolt "go.etcd.io/bbolt"
)

// repair makes the files and the index agree after whatever stopped the last run (see the
// package documentation), and returns the index as repaired. Files change first, then the
// index, in one transaction: a crash during repair leaves a state that repair handles again.
func (s *Spool) repair(raw map[string][]byte) (map[string]record, error) {
	touched := make(map[string]bool) // directories whose entries changed, fsynced before the index changes
	onDisk, err := s.scan(touched)
	if err != nil {
		return nil, err
	}

	recs := make(map[string]record)
	puts := make(map[string]record)
	var dels []string
	for _, k := range sortedKeys(raw) {
		n, ok := parseRel(k)
		if !ok {
			s.log.Warn("spool: dropped an index entry that names no spool file", "key", k)
			dels = append(dels, k)
			continue
		}
		path := s.path(n)
		r, err := decodeRecord(raw[k])
		if err != nil {
			// Forget the entry; the file, if there, is indexed again below.
			s.log.Error("spool: dropped an unreadable index entry; its file, if there, is indexed again", "file", path, "err", err)
			dels = append(dels, k)
			continue
		}
		size, present := onDisk[k]
		delete(onDisk, k)
		switch {
		case r.removing:
			if present {
				if err := os.Remove(path); err != nil {
					return nil, fmt.Errorf("spool: finish removing %s: %w", path, err)
				}
				touched[filepath.Dir(path)] = true
			}
			s.log.Warn("spool: finished a removal a stop interrupted", "file", path)
			dels = append(dels, k)
		case !present:
			s.log.Error("spool: an indexed file is gone: something removed it behind the spool's back; its entry is dropped",
				"file", path, "committed_size", r.size, "sha256", fmt.Sprintf("%x", r.sum))
			dels = append(dels, k)
		case r.next != nil:
			size, sum, err := hashFile(path)
			if err != nil {
				return nil, fmt.Errorf("spool: %w", err)
			}
			switch {
			case size == r.next.size && sum == r.next.sum:
				s.log.Warn("spool: completed a replacement a stop interrupted: the file holds the new version", "file", path)
				r = record{version: *r.next}
			case size == r.size && sum == r.sum:
				s.log.Warn("spool: a replacement was stopped before it took effect: the file holds the older version", "file", path)
				r.next = nil
			default:
				s.log.Error("spool: file matches neither its committed version nor its replacement: kept as committed; reading it reports corruption",
					"file", path, "size", size, "committed_size", r.size)
				r.next = nil
			}
			puts[k] = r
			recs[k] = r
		default:
			if size != r.size {
				s.log.Error("spool: file has changed size since it was committed: the file and its committed entry are kept; reading it reports corruption",
					"file", path, "size", size, "committed_size", r.size)
			}
			recs[k] = r
		}
	}

	// Files with a final name but no entry: renamed only after fsync, so complete.
	for _, k := range sortedKeys(onDisk) {
		n, _ := parseRel(k)
		path := s.path(n)
		size, sum, err := hashFile(path)
		if err != nil {
			return nil, fmt.Errorf("spool: %w", err)
		}
		fi, err := os.Stat(path)
		if err != nil {
			return nil, fmt.Errorf("spool: %w", err)
		}
		r := record{version: version{size: size, sum: sum, created: fi.ModTime().UTC()}}
		s.log.Warn("spool: indexed a complete file that had no index entry (a stop between its rename and its entry)",
			"file", path, "size", size)
		puts[k] = r
		recs[k] = r
	}

	if err := s.removeEmptyCallDirs(touched); err != nil {
		return nil, err
	}
	for _, d := range sortedKeys(touched) {
		if err := syncDir(d); err != nil {
			return nil, fmt.Errorf("spool: %w", err)
		}
	}
	if len(dels) == 0 && len(puts) == 0 {
		return recs, nil
	}
	err = s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketFiles)
		for _, k := range dels {
			if err := b.Delete([]byte(k)); err != nil {
				return err
			}
		}
		for k, r := range puts {
			if err := b.Put([]byte(k), r.encode()); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("spool: index %s: %w", s.join(indexName), err)
	}
	return recs, nil
}

// scan lists the spool's files by index key with their sizes, removing temporary files
// (their commits never returned, and they were never visible) and leaving alone, with a
// warning, anything the spool did not make.
func (s *Spool) scan(touched map[string]bool) (map[string]int64, error) {
	onDisk := make(map[string]int64)
	// file handles one directory entry in dir, whose files have keys prefix+name.
	file := func(dir, prefix string, de fs.DirEntry) error {
		path := filepath.Join(dir, de.Name())
		if isTemp(de.Name()) && !de.IsDir() {
			if err := os.Remove(path); err != nil {
				return fmt.Errorf("spool: remove unfinished %s: %w", path, err)
			}
			touched[dir] = true
			s.log.Warn("spool: removed an unfinished file (a stop before its rename; it was never visible)", "file", path)
			return nil
		}
		k := prefix + de.Name()
		if _, ok := parseRel(k); ok && de.Type().IsRegular() {
			fi, err := de.Info()
			if err != nil {
				return fmt.Errorf("spool: %w", err)
			}
			onDisk[k] = fi.Size()
			return nil
		}
		s.log.Warn("spool: left alone a file the spool did not make", "file", path)
		return nil
	}

	segs := s.join(segmentsDir)
	des, err := os.ReadDir(segs)
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	for _, de := range des {
		if !de.IsDir() || !ValidCallID(de.Name()) {
			if err := file(segs, segmentsDir+"/", de); err != nil {
				return nil, err
			}
			continue
		}
		callDir := filepath.Join(segs, de.Name())
		files, err := os.ReadDir(callDir)
		if err != nil {
			return nil, fmt.Errorf("spool: %w", err)
		}
		for _, f := range files {
			if err := file(callDir, segmentsDir+"/"+de.Name()+"/", f); err != nil {
				return nil, err
			}
		}
	}
	for _, sub := range []string{manifestsDir, purgeDir} {
		dir := s.join(sub)
		des, err := os.ReadDir(dir)
		if err != nil {
			return nil, fmt.Errorf("spool: %w", err)
		}
		for _, de := range des {
			if err := file(dir, sub+"/", de); err != nil {
				return nil, err
			}
		}
	}
	return onDisk, nil
}

// removeEmptyCallDirs removes the call directories with nothing in them.
func (s *Spool) removeEmptyCallDirs(touched map[string]bool) error {
	segs := s.join(segmentsDir)
	des, err := os.ReadDir(segs)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	for _, de := range des {
		if !de.IsDir() || !ValidCallID(de.Name()) {
			continue
		}
		dir := filepath.Join(segs, de.Name())
		files, err := os.ReadDir(dir)
		if err != nil {
			return fmt.Errorf("spool: %w", err)
		}
		if len(files) > 0 {
			continue
		}
		if err := os.Remove(dir); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("spool: remove empty call directory: %w", err)
		}
		delete(touched, dir)
		touched[segs] = true
		s.log.Warn("spool: removed an empty call directory", "dir", dir)
	}
	return nil
}

// hashFile returns the size and SHA-256 of a file.
func hashFile(path string) (int64, [32]byte, error) {
	var sum [32]byte
	f, err := os.Open(path)
	if err != nil {
		return 0, sum, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return 0, sum, fmt.Errorf("read %s: %w", path, err)
	}
	h.Sum(sum[:0])
	return n, sum, nil
}
