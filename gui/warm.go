package gui

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"fyne.io/fyne/v2/widget"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/wharf-registry/wharf/gui/model"
	"github.com/wharf-registry/wharf/server"
)

// warming is a pre-warm under way: its bytes read so far and in all,
// written by the pulling goroutine, read by followServer for the bar.
type warming struct {
	done, total atomic.Int64
}

// warmTimeout bounds one pre-warm; a big image over a slow upstream
// takes a while, a stuck one should not hold the button forever.
const warmTimeout = 30 * time.Minute

// prewarm pulls the image named in the field through the server, as a
// client would (manifest, config, every layer to the end), so it is
// cached before anyone needs it. It pulls for this machine's platform
// from the server in this process over loopback.
func (a *App) prewarm() {
	c := &a.cache
	image := strings.TrimSpace(c.image.Text)
	srv := a.running()
	switch {
	case srv == nil:
		c.result.Importance = widget.DangerImportance
		c.result.SetText("Start the server first: pre-warming pulls through it.")
		return
	case image == "":
		c.result.Importance = widget.DangerImportance
		c.result.SetText("Name an image to pre-warm, as you would pull it: alpine:3.20, hub/library/golang:1.23")
		return
	}
	w := &warming{}
	c.warm = w
	c.warmBtn.Disable()
	c.warmBar.SetValue(0)
	c.warmBar.Show()
	c.result.Importance = widget.MediumImportance
	c.result.SetText("Pre-warming " + image + "…")
	a.background(func() func() {
		ctx, cancel := context.WithTimeout(context.Background(), warmTimeout)
		defer cancel()
		n, err := pullThrough(ctx, srv, image, w)
		return func() {
			c.warm = nil
			c.warmBtn.Enable()
			c.warmBar.Hide()
			if err != nil {
				c.result.Importance = widget.DangerImportance
				c.result.SetText("Pre-warming " + image + ": " + err.Error())
				return
			}
			c.result.Importance = widget.SuccessImportance
			c.result.SetText(fmt.Sprintf("Pre-warmed %s: %d layers, %s.", image, n, model.Bytes(w.total.Load())))
			a.refreshCache()
		}
	})
}

// showWarm moves the bar; followServer calls it at every refresh.
func (a *App) showWarm() {
	if w := a.cache.warm; w != nil && w.total.Load() > 0 {
		a.cache.warmBar.SetValue(float64(w.done.Load()) / float64(w.total.Load()))
	}
}

// pullThrough reads image from srv's registry API on loopback (manifest,
// config, layers) and counts the layer bytes into w. It returns the
// number of layers.
func pullThrough(ctx context.Context, srv *server.Server, image string, w *warming) (int, error) {
	_, port, err := net.SplitHostPort(srv.Addr())
	if err != nil {
		return 0, err
	}
	ref, err := name.ParseReference(net.JoinHostPort("127.0.0.1", port)+"/"+image, name.Insecure)
	if err != nil {
		return 0, fmt.Errorf("%q is not an image name: %w", image, err)
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	// The server dialled is this process's own, on loopback: there is no
	// one in between whose certificate a self-signed CA would catch.
	tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
	img, err := remote.Image(ref, remote.WithContext(ctx), remote.WithTransport(tr),
		remote.WithPlatform(v1.Platform{OS: "linux", Architecture: runtime.GOARCH}))
	if err != nil {
		return 0, err
	}
	if _, err := img.RawConfigFile(); err != nil { // a pull reads it: cache it too
		return 0, err
	}
	layers, err := img.Layers()
	if err != nil {
		return 0, err
	}
	for _, l := range layers {
		n, err := l.Size()
		if err != nil {
			return 0, err
		}
		w.total.Add(n)
	}
	for _, l := range layers {
		rc, err := l.Compressed()
		if err != nil {
			return 0, err
		}
		_, err = io.Copy(countTo{&w.done}, rc)
		rc.Close()
		if err != nil {
			return 0, err
		}
	}
	return len(layers), nil
}

type countTo struct{ n *atomic.Int64 }

func (c countTo) Write(p []byte) (int, error) { c.n.Add(int64(len(p))); return len(p), nil }
