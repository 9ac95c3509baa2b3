package storage

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/datadriven"
)

// TestCollect runs testdata/collect. Objects are written in short form:
// M3 is checkpoint 3's manifest, P3 a private file of checkpoint 3, S7 the
// shared object number 7; "@10m" gives an object's age (default 24h).
//
//	collect retained=(3,5) known=(1,6) grace=1h
//	M1 P1 S1 S2@10m ...       objects in the store, one or more lines
//	man 3: P3 S2 S3           the files a manifest references
//	----
//	delete M1: reason         what Collect deletes, in order
func TestCollect(t *testing.T) {
	now := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	long := func(short string) string {
		n, err := strconv.Atoi(short[1:])
		if err != nil {
			return short // a foreign name, kept as is
		}
		switch short[0] {
		case 'M':
			return ManifestObject(uint64(n))
		case 'P':
			name, _ := PrivateObject(uint64(n), "op", 0, "OPTIONS")
			return name
		case 'S':
			var d Digest
			d.SHA256[0] = byte(n)
			d.Size = int64(n)
			return SharedObject(d)
		}
		return short
	}
	shortRE := regexp.MustCompile(`^[MPS][0-9]+$`)
	short := map[string]string{}
	datadriven.RunTest(t, "testdata/collect", func(t *testing.T, d *datadriven.TestData) string {
		var retainedIDs, knownIDs []uint64
		grace := time.Duration(0)
		for _, arg := range d.CmdArgs {
			switch arg.Key {
			case "retained", "known":
				for _, v := range arg.Vals {
					id, err := strconv.ParseUint(v, 10, 64)
					if err != nil {
						t.Fatalf("%s: %v", arg.Key, err)
					}
					if arg.Key == "retained" {
						retainedIDs = append(retainedIDs, id)
					} else {
						knownIDs = append(knownIDs, id)
					}
				}
			case "grace":
				var err error
				if grace, err = time.ParseDuration(arg.Vals[0]); err != nil {
					t.Fatal(err)
				}
			}
		}
		var objs []ObjectInfo
		files := map[uint64][]string{}
		for _, line := range strings.Split(d.Input, "\n") {
			if rest, ok := strings.CutPrefix(line, "man "); ok {
				idStr, list, _ := strings.Cut(rest, ":")
				id, _ := strconv.ParseUint(idStr, 10, 64)
				for _, f := range strings.Fields(list) {
					files[id] = append(files[id], long(f))
				}
				continue
			}
			for _, f := range strings.Fields(line) {
				name, ageStr, _ := strings.Cut(f, "@")
				age := 24 * time.Hour
				if ageStr != "" {
					var err error
					if age, err = time.ParseDuration(ageStr); err != nil {
						t.Fatal(err)
					}
				}
				if shortRE.MatchString(name) {
					short[long(name)] = name
				}
				objs = append(objs, ObjectInfo{Name: long(name), Size: 1, ModTime: now.Add(-age)})
			}
		}
		man := func(id uint64) *Manifest {
			st := SubtaskState{}
			for i, f := range files[id] {
				st.Files = append(st.Files, StateFile{LocalName: fmt.Sprint(i), Object: f})
			}
			return &Manifest{JobName: "j", CheckpointID: id, MaxParallelism: 1, Operators: []OperatorState{{UID: "op", Subtasks: []SubtaskState{st}}}}
		}
		var retained, known []*Manifest
		for _, id := range retainedIDs {
			retained = append(retained, man(id))
		}
		for _, id := range knownIDs {
			known = append(known, man(id))
		}
		got := Collect(objs, retained, known, now, grace)
		ref := Referenced(retained)
		var b strings.Builder
		for _, g := range got {
			if ref[g.Object] {
				t.Errorf("Collect deletes %s, which a retained manifest references", g.Object)
			}
			name := g.Object
			if s, ok := short[name]; ok {
				name = s
			}
			fmt.Fprintf(&b, "delete %s: %s\n", name, g.Reason)
		}
		if b.Len() == 0 {
			return "nothing\n"
		}
		return b.String()
	})
}
