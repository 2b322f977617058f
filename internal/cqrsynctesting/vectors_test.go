package cqrsynctesting_test

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/cqrsync/cqrsync/internal/cqrsynctesting"
)

// TestVectorsMatchShared keeps testdata/interop a faithful copy of the wire
// contract: when shared/interop sits beside the repository (as on the
// development machines and in CI), every vector there must be here, byte for
// byte. A plain clone has no shared folder and relies on the copy alone.
func TestVectorsMatchShared(t *testing.T) {
	local := cqrsynctesting.VectorsDir(t)
	shared := filepath.Join(local, "..", "..", "..", "..", "shared", "interop", "vectors")
	entries, err := os.ReadDir(shared)
	if os.IsNotExist(err) {
		t.Skipf("no %s beside the repository: nothing to compare the copy with", shared)
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() {
			continue
		}
		want, err := os.ReadFile(filepath.Join(shared, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(local, e.Name()))
		if err != nil {
			t.Errorf("%s is in shared/interop/vectors but not in testdata: copy it (%v)", e.Name(), err)
			continue
		}
		if !bytes.Equal(got, want) {
			t.Errorf("testdata/interop/vectors/%s differs from shared/interop/vectors: copy it again", e.Name())
		}
	}
}
