package gui

import (
	"context"
	"fmt"
	"strings"
	"time"

	"fyne.io/fyne/v2/widget"

	"github.com/wharf-registry/wharf/gui/model"
	"github.com/wharf-registry/wharf/server"
)

// warming is a pre-warm under way: the server counts its bytes, read by
// followServer for the bar.
type warming = server.PrewarmProgress

// warmTimeout bounds one pre-warm; a big image over a slow upstream
// takes a while, a stuck one should not hold the button forever.
const warmTimeout = 30 * time.Minute

// prewarm caches the image named in the field through the server, as a
// client pulling it would (manifest, config, every layer to the end), so
// it is there before anyone needs it (server.Prewarm: in this process,
// for this machine's platform, no login needed).
func (a *App) prewarm() {
	c := &a.cache
	image := strings.TrimSpace(c.image.Text)
	b, _ := a.backend()
	switch {
	case b == nil:
		c.result.Importance = widget.DangerImportance
		c.result.SetText("Start the server first: pre-warming pulls through it.")
		return
	case image == "":
		c.result.Importance = widget.DangerImportance
		c.result.SetText("Name an image to pre-warm, as you would pull it: alpine:3.20, hub/library/golang:1.23")
		return
	}
	w := &warming{}
	c.warmBtn.Disable()
	c.result.Importance = widget.MediumImportance
	if a.opts.Remote != nil {
		// The remote wharf does not stream its count back: its layers
		// show under Transfers on the Dashboard while they arrive.
		c.result.SetText("Pre-warming " + image + " on the remote wharf… (the Dashboard shows its transfers)")
	} else {
		c.warm = w
		c.warmBar.SetValue(0)
		c.warmBar.Show()
		c.result.SetText("Pre-warming " + image + "…")
	}
	a.background(func() func() {
		ctx, cancel := context.WithTimeout(context.Background(), warmTimeout)
		defer cancel()
		res, err := b.Prewarm(ctx, image, w)
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
			c.result.SetText(fmt.Sprintf("Pre-warmed %s: %d layers, %s.", res.Image, res.Layers, model.Bytes(res.Bytes)))
			a.refreshCache()
		}
	})
}

// showWarm moves the bar; followServer calls it at every refresh.
func (a *App) showWarm() {
	if w := a.cache.warm; w != nil && w.Total.Load() > 0 {
		a.cache.warmBar.SetValue(float64(w.Done.Load()) / float64(w.Total.Load()))
	}
}
