package server

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
)

// An internal failure reaches the operator as a 500 that says what failed,
// not the registry API's pointer to the log.
func TestAdminErrorSaysWhatFailed(t *testing.T) {
	s := &Server{log: slog.New(slog.DiscardHandler)}
	w := httptest.NewRecorder()
	s.adminError(w, httptest.NewRequest("GET", "/cache/stats", nil), fmt.Errorf("cache stats: reading the index: %w", errors.New("disk on fire")))
	b := w.Body.String()
	if w.Code != 500 || !strings.Contains(b, `"UNKNOWN"`) || !strings.Contains(b, "cache stats: reading the index: disk on fire") {
		t.Errorf("%d %s", w.Code, b)
	}
}
