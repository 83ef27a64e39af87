//go:build linux

package e2e

import (
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/wharf-registry/wharf/e2e/harness"
)

// replicasSeen is the base URLs of the replicas w's /-/status lists.
func replicasSeen(t *testing.T, w *harness.Wharf) []string {
	t.Helper()
	resp, err := http.Get(w.URL + "/-/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r struct {
		Replicas []struct {
			Addr string `json:"addr"`
			Self bool   `json:"self"`
		} `json:"replicas"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	var addrs []string
	for _, rep := range r.Replicas {
		if rep.Self != (rep.Addr == w.URL) {
			t.Errorf("replica %s: self %v, asked %s", rep.Addr, rep.Self, w.URL)
		}
		addrs = append(addrs, rep.Addr)
	}
	slices.Sort(addrs)
	return addrs
}

// TestClusterStatusReplicas: wharf status lists the replicas alive; a
// killed one drops out once its heartbeat is 30 s old.
func TestClusterStatusReplicas(t *testing.T) {
	skipShortE2E(t)
	bin := harness.BuildWharf(t)
	c := harness.StartClusterEngines(t)
	r1 := c.StartReplica(t, bin, clusterHosted)
	r2 := c.StartReplica(t, bin, clusterHosted)
	both := []string{r1.URL, r2.URL}
	slices.Sort(both)
	for _, r := range []*harness.Wharf{r1, r2} {
		if got := replicasSeen(t, r); !slices.Equal(got, both) {
			t.Errorf("%s lists replicas %v, want %v", r.URL, got, both)
		}
	}
	out, err := r1.Run("status", "--url", r1.URL)
	t.Logf("wharf status:\n%s", out)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "Replicas (2 seen in the last 30s)") || !strings.Contains(out, r2.URL) {
		t.Errorf("wharf status does not list both replicas")
	}

	killed := time.Now()
	if err := r2.Kill(); err == nil {
		t.Log("killed replica 2")
	}
	deadline := time.Now().Add(90 * time.Second)
	for !slices.Equal(replicasSeen(t, r1), []string{r1.URL}) {
		if time.Now().After(deadline) {
			t.Fatalf("replica 2 still listed %s after it was killed", time.Since(killed))
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("replica 2 dropped out of the list %s after it was killed", time.Since(killed).Round(time.Second))
	out, err = r1.Run("status", "--url", r1.URL)
	if err != nil || !strings.Contains(out, "Replicas (1 seen in the last 30s)") || strings.Contains(out, r2.URL) {
		t.Errorf("wharf status after the kill (%v):\n%s", err, out)
	}
}

// clusterMetric reads one series of replica r's /metrics (0 when absent),
// over TLS too, whatever its certificate.
func clusterMetric(t *testing.T, r *harness.Wharf, series string) float64 {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} //nolint:gosec // a replica's own CA
	defer client.CloseIdleConnections()
	resp, err := client.Get(r.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s/metrics: %d %v", r.URL, resp.StatusCode, err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %q: %v", series, v, err)
			}
			return f
		}
	}
	return 0
}
