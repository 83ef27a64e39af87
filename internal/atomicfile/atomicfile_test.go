package atomicfile

import (
	"os"
	"path/filepath"
	"testing"
)

func TestWrite(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "f")
	for _, tc := range []struct {
		text string
		mode os.FileMode
	}{{"one", 0o640}, {"two", 0o600}} {
		if err := Write(p, []byte(tc.text), tc.mode); err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(p)
		fi, _ := os.Stat(p)
		if string(b) != tc.text || fi.Mode().Perm() != tc.mode {
			t.Errorf("got %q %v, want %q %v", b, fi.Mode().Perm(), tc.text, tc.mode)
		}
	}
	if err := Write(filepath.Join(dir, "missing", "f"), []byte("x"), 0o600); err == nil {
		t.Error("Write into a missing directory succeeded")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("left behind: %v", entries)
	}
}
