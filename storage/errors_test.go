package storage

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/wharf-registry/wharf/oci"
)

// Failures say which operation on which blob failed and keep their cause
// for errors.Is; a missing blob stays BLOB_UNKNOWN.
func TestErrorsSayWhatFailed(t *testing.T) {
	s := newStore(t)
	body := content("errors", 1000)
	d := oci.FromBytes(body)

	cause := errors.New("client hung up")
	_, err := s.Put(t.Context(), d, int64(len(body)), io.MultiReader(bytes.NewReader(body[:500]), iotest.ErrReader(cause)))
	if !errors.Is(err, cause) || !strings.HasPrefix(err.Error(), "storage: put "+string(d)+" after 500 bytes: ") {
		t.Errorf("Put with a failing reader: %v", err)
	}

	if _, err := s.Stat(d); !errors.Is(err, oci.ErrBlobUnknown) || !strings.Contains(err.Error(), string(d)) {
		t.Errorf("Stat(missing) = %v, want BLOB_UNKNOWN naming the digest", err)
	}

	// A directory where the file belongs cannot be removed as one.
	p := s.path(d)
	if err := os.MkdirAll(filepath.Join(p, "x"), 0o750); err != nil {
		t.Fatal(err)
	}
	err = s.Delete(d)
	if err == nil || !strings.HasPrefix(err.Error(), "storage: delete "+string(d)+": ") || errors.Is(err, oci.ErrBlobUnknown) {
		t.Errorf("Delete of an undeletable file: %v", err)
	}
	var pe *os.PathError
	if !errors.As(err, &pe) {
		t.Errorf("Delete lost its cause: %v", err)
	}
}
