package server_test

import (
	"io"
	"net/http"
	"testing"
	"time"
)

// Transfers shows a fill while the origin is still sending, with its size
// and the bytes received so far, and forgets it once it is committed.
func TestTransfersShowFillsUnderWay(t *testing.T) {
	o := newOrigin(t)
	img, layer := bigLayerImage(t, 2<<20)
	o.push(t, "library/slow:1", img)
	s := start(t, proxyConfig(t, o.URL, ""))
	release := make(chan struct{})
	var size int
	o.holdHalf(layer, release)
	if got := s.Transfers(); len(got) != 0 {
		t.Fatalf("transfers before any pull: %+v", got)
	}
	resp, err := http.Get("http://" + s.Addr() + "/v2/library/slow/blobs/" + layer.String())
	if err != nil {
		close(release)
		t.Fatal(err)
	}
	defer resp.Body.Close()
	size = int(resp.ContentLength)
	one := make([]byte, 1)
	if _, err := io.ReadFull(resp.Body, one); err != nil { // the fill has bytes now
		close(release)
		t.Fatal(err)
	}
	tr := s.Transfers()
	close(release)
	if len(tr) != 1 {
		t.Fatalf("transfers while the origin sends: %+v, want one", tr)
	}
	if tr[0].Proxy != "hub" || tr[0].Repo != "library/slow" || tr[0].Digest.String() != layer.String() ||
		tr[0].Size != int64(size) || tr[0].Received <= 0 || tr[0].Received > int64(size/2) {
		t.Errorf("transfer = %+v, want hub library/slow %s, size %d, 0 < received <= %d", tr[0], layer, size, size/2)
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s.Lifecycle().Idle():
	case <-time.After(30 * time.Second):
		t.Fatal("the fill never finished")
	}
	if got := s.Transfers(); len(got) != 0 {
		t.Errorf("transfers after the fill: %+v", got)
	}
}
