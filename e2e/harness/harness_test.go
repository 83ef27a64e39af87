//go:build linux

package harness

import (
	"bytes"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/validate"
)

// These tests prove the harness against Distribution, so the pieces are known
// to work before they are pointed at wharf.

func skipShort(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts real processes")
	}
}

func TestDistributionAnonymous(t *testing.T) {
	skipShort(t)
	d := StartDistribution(t, DistributionOptions{})
	img := PushRandomImage(t, d.Addr+"/team/app:v1", ImageSpec{})
	idx := PushRandomIndex(t, d.Addr+"/team/app:multi", ImageSpec{OCI: true}, nil)

	got, err := remote.Image(Ref(t, d.Addr+"/team/app:v1"), remote.WithContext(t.Context()))
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(got); err != nil {
		t.Fatal(err)
	}
	if want, have := mustDigest(t, img), mustDigest(t, got); want != have {
		t.Errorf("image digest %s, pushed %s", have, want)
	}
	gotIdx, err := remote.Index(Ref(t, d.Addr+"/team/app:multi"), remote.WithContext(t.Context()))
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Index(gotIdx); err != nil {
		t.Fatal(err)
	}
	if want, have := mustDigest(t, idx), mustDigest(t, gotIdx); want != have {
		t.Errorf("index digest %s, pushed %s", have, want)
	}
}

func TestDistributionBasicAuth(t *testing.T) {
	skipShort(t)
	d := StartDistribution(t, DistributionOptions{Auth: AuthBasic})
	ref := d.Addr + "/team/app:v1"
	PushRandomImage(t, ref, ImageSpec{Layers: 1}, remote.WithAuth(d.Auth()))
	if _, err := remote.Head(Ref(t, ref), remote.WithContext(t.Context())); !HasStatus(err, http.StatusUnauthorized) {
		t.Errorf("anonymous HEAD: got %v, want 401", err)
	}
	if _, err := remote.Head(Ref(t, ref), remote.WithAuth(d.Auth())); err != nil {
		t.Errorf("HEAD with credentials: %v", err)
	}
}

func TestDistributionTokenAuth(t *testing.T) {
	skipShort(t)
	d := StartDistribution(t, DistributionOptions{Auth: AuthToken})
	ref := d.Addr + "/library/app:v1"
	img := PushRandomImage(t, ref, ImageSpec{Layers: 2}, remote.WithAuth(d.Auth()))

	// Anonymous pulls get a pull token, as on Docker Hub.
	got, err := remote.Image(Ref(t, ref), remote.WithContext(t.Context()))
	if err != nil {
		t.Fatalf("anonymous pull: %v", err)
	}
	if err := validate.Image(got); err != nil {
		t.Fatal(err)
	}
	if mustDigest(t, got) != mustDigest(t, img) {
		t.Error("pulled digest differs")
	}
	// Anonymous pushes are refused.
	err = remote.Write(Ref(t, d.Addr+"/library/other:v1"), RandomImage(t, ImageSpec{Layers: 1}), remote.WithContext(t.Context()))
	if err == nil {
		t.Error("anonymous push succeeded")
	}
	// Wrong credentials are refused by the token server.
	bad := &authn.Basic{Username: d.Username, Password: "wrong"}
	if _, err := remote.Head(Ref(t, ref), remote.WithAuth(bad)); err == nil {
		t.Error("pull with a wrong password succeeded")
	}

	var sawUser, sawAnon bool
	for _, r := range d.Token.Requests() {
		if r.Status != http.StatusOK {
			continue
		}
		if r.Account == d.Username && strings.Contains(strings.Join(r.Scopes, " "), "library/app:push") {
			sawUser = true
		}
		if r.Account == "" {
			sawAnon = true
		}
	}
	if !sawUser || !sawAnon {
		t.Errorf("token requests %+v: want an authenticated push scope and an anonymous one", d.Token.Requests())
	}
}

func TestDistributionProxy(t *testing.T) {
	skipShort(t)
	origin := StartDistribution(t, DistributionOptions{Auth: AuthToken})
	ref := "/library/busybox:latest"
	want := PushBusybox(t, origin.Addr+ref, remote.WithAuth(origin.Auth()))
	proxy := StartDistribution(t, DistributionOptions{
		ProxyRemoteURL: origin.URL,
		ProxyUsername:  origin.Username,
		ProxyPassword:  origin.Password,
	})
	got, err := remote.Image(Ref(t, proxy.Addr+ref), remote.WithContext(t.Context()))
	if err != nil {
		t.Fatal(err)
	}
	if err := validate.Image(got); err != nil {
		t.Fatal(err)
	}
	if mustDigest(t, got) != want {
		t.Errorf("proxy served %s, origin has %s", mustDigest(t, got), want)
	}
}

func TestSkopeoInspect(t *testing.T) {
	skipShort(t)
	d := StartDistribution(t, DistributionOptions{})
	img := PushRandomImage(t, d.Addr+"/team/app:v1", ImageSpec{OCI: true})
	out, err := Skopeo(t, "inspect", "--tls-verify=false", "docker://"+d.Addr+"/team/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, mustDigest(t, img).String()) {
		t.Errorf("skopeo inspect does not name digest %s:\n%s", mustDigest(t, img), out)
	}
}

// TestDockerdMirror runs a test-owned dockerd whose Docker Hub mirror is a
// Distribution holding library/busybox, pulls busybox:latest through it and
// runs it.
func TestDockerdMirror(t *testing.T) {
	skipShort(t)
	origin := StartDistribution(t, DistributionOptions{})
	want := PushBusybox(t, origin.Addr+"/library/busybox:latest")
	d := StartDockerd(t, []string{origin.URL}, nil)
	out, err := d.Docker("pull", "busybox:latest")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, want.String()) {
		t.Errorf("docker pull output does not name %s:\n%s", want, out)
	}
	out, err = d.Docker("run", "--rm", "--network", "none", "busybox:latest", "echo", "hello")
	if err != nil {
		t.Fatal(err)
	}
	if out != "hello" {
		t.Errorf("docker run printed %q, want hello", out)
	}
}

func TestContainerdPull(t *testing.T) {
	skipShort(t)
	origin := StartDistribution(t, DistributionOptions{})
	want := PushBusybox(t, origin.Addr+"/library/busybox:latest")
	c := StartContainerd(t)
	if out, err := c.Ctr("version"); err != nil {
		t.Fatal(err)
	} else if !strings.Contains(out, "Server:") {
		t.Errorf("ctr version:\n%s", out)
	}
	hosts := c.HostsDir(t, map[string][]string{"docker.io": {origin.URL}})
	if _, err := c.Ctr("images", "pull", "--hosts-dir", hosts, "docker.io/library/busybox:latest"); err != nil {
		t.Fatal(err)
	}
	out, err := c.Ctr("images", "ls")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, want.String()) {
		t.Errorf("ctr images ls does not show %s:\n%s", want, out)
	}
}

func TestProcessStopAndKill(t *testing.T) {
	skipShort(t)
	dir := t.TempDir()
	p := StartProcess(t, "sleeper", dir, nil, "/bin/sh", "-c", "echo started; exec sleep 60")
	p.WaitReady(t, ReadyTimeout, func() error {
		if !strings.Contains(p.Logs(), "started") {
			return errors.New("no output yet")
		}
		return nil
	})
	if err := p.Stop(); err == nil {
		t.Error("sleep killed by SIGTERM exited 0")
	}
	if p.Running() {
		t.Error("still running after Stop")
	}
	q := StartProcess(t, "sleeper2", dir, nil, "/bin/sh", "-c", "exec sleep 60")
	if err := q.Kill(); err == nil || !strings.Contains(err.Error(), "killed") {
		t.Errorf("Kill: %v", err)
	}
}

func mustDigest(t *testing.T, d interface {
	Digest() (v1.Hash, error)
}) v1.Hash {
	t.Helper()
	h, err := d.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestRunConformanceReportsFailures runs one branch of the suite against
// Distribution 2.8, which answers out-of-order chunks with 202 instead of 416,
// to prove failures are parsed out of junit.xml.
func TestRunConformanceReportsFailures(t *testing.T) {
	skipShort(t)
	bin := ConformanceBin(t)
	d := StartDistribution(t, DistributionOptions{})
	res := RunConformance(t, bin, ConformanceOptions{
		Registry: d.Addr,
		Env:      map[string]string{"OCI_FILTER_TEST": "OCI Conformance Test/sha256 blobs/chunked out-of-order"},
	})
	// With a filter the program exits 0 whatever happened, so only the
	// parsed results count.
	if len(res.Failed) == 0 {
		t.Fatalf("want failures from Distribution; got exit %v, %d failed of %d\n%s", res.ExitErr, len(res.Failed), res.Tests, res.Output)
	}
	for _, c := range res.Failed {
		if !strings.Contains(c.Name, "chunked out-of-order") || !strings.Contains(c.Errors, "416") {
			t.Errorf("unexpected failure %+v", c)
		}
	}
	if !strings.Contains(res.Summary(), "chunked out-of-order") {
		t.Errorf("summary does not list the failure:\n%s", res.Summary())
	}
}

// TestLoopbackNames: a command run behind the prefix resolves the names to
// 127.0.0.1; the machine's /etc/hosts is left as it was.
func TestLoopbackNames(t *testing.T) {
	skipShort(t)
	before, err := os.ReadFile("/etc/hosts")
	if err != nil {
		t.Fatal(err)
	}
	out, err := runTool(time.Minute, nil, t.TempDir(), append(LoopbackNames(t, "a.wharf.test"), Tool(t, "getent"), "hosts", "a.wharf.test")...)
	if err != nil || !strings.HasPrefix(out, "127.0.0.1") {
		t.Fatalf("getent hosts a.wharf.test behind the prefix: %v: %q", err, out)
	}
	if after, _ := os.ReadFile("/etc/hosts"); !bytes.Equal(after, before) {
		t.Fatal("/etc/hosts changed")
	}
}

// TestHTTPSTransportNegotiatesHTTP2: the transport trusts the CA given and
// takes HTTP/2 when offered; the recorder sees the protocol.
func TestHTTPSTransportNegotiatesHTTP2(t *testing.T) {
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw})
	rec := &ProtocolRecorder{Next: HTTPSTransport(t, ca, "")}
	resp, err := (&http.Client{Transport: rec}).Get(srv.URL + "/v2/x/blobs/y")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := rec.Answers("/blobs/"); len(got) != 1 || got[0].Proto != "HTTP/2.0" || got[0].Status != 200 {
		t.Fatalf("answers %+v, want one 200 over HTTP/2.0", got)
	}
}
