package upstream

import (
	"bytes"
	"encoding/base64"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// syncBuffer lets the handler write from request goroutines while the test
// reads at the end.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestCredentialsNeverLogged(t *testing.T) {
	const user, pass = "carol", "pa55-w0rd-XYZ"
	var buf syncBuffer
	logger := slog.New(slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))

	// Token flow with credentials, successful and rejected, plus retries.
	h := newFakeHub(t)
	h.set(func() {
		h.user, h.pass = user, pass
		h.throttle, h.retryAfter = 1, "1"
	})
	h.addImage("library/busybox", "latest", []byte("layer"))
	cfg := Config{Name: "hub", URL: h.reg.URL, DockerHub: true, Username: user, Password: pass, Logger: logger}
	logger.Info("configured upstream", "config", cfg)
	c := newTestClient(t, cfg)
	if _, _, err := c.GetManifest(t.Context(), "busybox", "latest", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Ping(t.Context()); err != nil {
		t.Fatal(err)
	}
	wrong := newTestClient(t, Config{URL: h.reg.URL, DockerHub: true, Username: user, Password: pass + "-wrong", Logger: logger})
	_, _, err := wrong.GetManifest(t.Context(), "busybox", "latest", nil)
	logger.Error("pull failed", "err", err)

	// Basic auth against a flaky server, so retries log errors too.
	var calls atomic.Int32
	srv := newServer(t, func(w http.ResponseWriter, r *http.Request) {
		if _, _, ok := r.BasicAuth(); !ok {
			w.Header().Set("WWW-Authenticate", `Basic realm="x"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if calls.Add(1) < 3 {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		w.Write([]byte("{}"))
	})
	basic := newTestClient(t, Config{URL: srv.URL, Username: user, Password: pass, Logger: logger})
	if _, _, err := basic.GetManifest(t.Context(), "a/b", "latest", nil); err != nil {
		t.Fatal(err)
	}

	out := buf.String()
	if !strings.Contains(out, "retrying") || !strings.Contains(out, "upstream request") {
		t.Fatalf("expected debug and retry logs, got:\n%s", out)
	}
	secrets := []string{
		pass,
		base64.StdEncoding.EncodeToString([]byte(user + ":" + pass)),
		"tok-",
	}
	secrets = append(secrets, h.issued()...)
	for _, s := range secrets {
		if strings.Contains(out, s) {
			t.Errorf("log output contains secret %q", s)
		}
	}
}
