package gui

import (
	"context"
	"fmt"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/wharf-registry/wharf/gui/model"
	"github.com/wharf-registry/wharf/server"
)

// cacheTab is the Cache tab: what the proxies cached, pin, unpin, evict,
// and garbage collection of hosted content with a dry run first.
type cacheTab struct {
	summary    *widget.Label
	rows       *fyne.Container
	refreshBtn *widget.Button
	image      *widget.Entry
	pin, unpin *widget.Button
	evict      *widget.Button
	result     *widget.Label
	gcPreview  *widget.Button
	gcRun      *widget.Button
	gcResult   *widget.Label
	warmBtn    *widget.Button
	warmBar    *widget.ProgressBar
	warm       *warming // the pre-warm under way, if any

	listed    []model.CachedRepo // what the rows show
	loading   bool               // a listing is being read
	again     bool               // something changed while it was
	loadedGen int                // the server generation listed
}

// maxCacheRows bounds the rows drawn; the summary counts everything.
const maxCacheRows = 200

func (a *App) buildCache() fyne.CanvasObject {
	c := &a.cache
	c.summary = widget.NewLabel("Start the server to browse its cache.")
	c.summary.Wrapping = fyne.TextWrapWord
	c.rows = container.NewVBox()
	c.refreshBtn = widget.NewButtonWithIcon("Refresh", theme.ViewRefreshIcon(), a.refreshCache)
	c.image = entry("an image as you pull it: hub/library/alpine:3.20, alpine:3.20")
	c.result = widget.NewLabel("")
	c.result.Wrapping = fyne.TextWrapWord
	c.pin = widget.NewButtonWithIcon("Pin", theme.ConfirmIcon(), func() { a.imageAction("pinned", a.pinImage(true)) })
	c.unpin = widget.NewButtonWithIcon("Unpin", theme.CancelIcon(), func() { a.imageAction("unpinned", a.pinImage(false)) })
	c.evict = widget.NewButtonWithIcon("Evict", theme.DeleteIcon(), func() {
		a.imageAction("evicted", func(ctx context.Context, b cacheBackend, image string) (string, error) {
			r, err := b.EvictImage(ctx, image)
			return fmt.Sprintf("%d blobs, %s freed", r.Blobs, model.Bytes(r.Bytes)), err
		})
	})
	c.evict.Importance = widget.DangerImportance
	c.warmBtn = widget.NewButtonWithIcon("Pre-warm", theme.DownloadIcon(), a.prewarm)
	c.warmBar = widget.NewProgressBar()
	c.warmBar.Hide()
	c.gcResult = widget.NewLabel("Garbage collection frees hosted blobs no manifest references any more.")
	c.gcResult.Wrapping = fyne.TextWrapWord
	c.gcPreview = widget.NewButtonWithIcon("Preview (dry run)", theme.SearchIcon(), func() { a.runGC(true) })
	c.gcRun = widget.NewButtonWithIcon("Collect garbage", theme.DeleteIcon(), func() { a.runGC(false) })

	images := container.NewVBox(
		container.NewBorder(nil, nil, nil, container.NewHBox(c.warmBtn, c.pin, c.unpin, c.evict), c.image),
		c.warmBar, c.result)
	return container.NewBorder(
		container.NewVBox(
			container.NewBorder(nil, nil, nil, c.refreshBtn, c.summary),
			widget.NewCard("", "Pre-warm, pin, unpin or evict an image", images),
			widget.NewCard("", "Garbage collection", container.NewVBox(container.NewHBox(c.gcPreview, c.gcRun), c.gcResult)),
		), nil, nil, nil,
		widget.NewCard("", "Cached by proxy, repository and tag (most recently used first; a tag button selects that image)", container.NewVScroll(c.rows)),
	)
}

// refreshCache reads the listing off the UI thread; one read at a time,
// and one more if something asked meanwhile.
func (a *App) refreshCache() {
	c := &a.cache
	b, gen := a.backend()
	if b == nil {
		c.summary.SetText("Start the server to browse its cache.")
		c.listed = nil
		c.rows.RemoveAll()
		return
	}
	if c.loading {
		c.again = true
		return
	}
	c.loading = true
	a.background(func() func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		entries, err := b.CacheList(ctx, "last-used", "", 0)
		var st server.CacheStats
		if err == nil {
			st, err = b.CacheStats(ctx)
		}
		return func() {
			c.loading = false
			c.loadedGen = gen
			if err != nil {
				c.summary.SetText("Reading the cache failed: " + err.Error())
			} else {
				c.summary.SetText(model.CacheSummary(st))
				a.showCacheRows(model.CachedRepos(entries))
				a.opts.Logger.Debug("cache listed", "rows", len(c.listed), "blobs", len(entries))
			}
			if c.again {
				c.again = false
				a.refreshCache()
			}
		}
	})
}

func (a *App) showCacheRows(rows []model.CachedRepo) {
	c := &a.cache
	c.listed = rows
	c.rows.RemoveAll()
	now, proxy := time.Now(), ""
	for i, r := range rows {
		if i == maxCacheRows {
			c.rows.Add(widget.NewLabel(fmt.Sprintf("… and %d more", len(rows)-i)))
			break
		}
		if r.Proxy != proxy {
			proxy = r.Proxy
			c.rows.Add(bold(proxy))
		}
		r := r
		l := widget.NewLabel(r.Text(now))
		l.Truncation = fyne.TextTruncateEllipsis
		// One button per cached tag puts that image in the field above.
		picks := container.NewHBox()
		for _, tag := range r.Tags {
			image := r.Repo + ":" + tag
			picks.Add(widget.NewButton(":"+tag, func() { c.image.SetText(image) }))
		}
		if len(r.Tags) == 0 {
			picks.Add(widget.NewButton("Select", func() { c.image.SetText(r.Repo) }))
		}
		c.rows.Add(container.NewBorder(nil, nil, nil, picks, l))
	}
	if len(rows) == 0 {
		c.rows.Add(widget.NewLabel("Nothing cached yet: pull an image through wharf."))
	}
}

func (a *App) pinImage(pin bool) func(context.Context, cacheBackend, string) (string, error) {
	return func(ctx context.Context, b cacheBackend, image string) (string, error) {
		r, err := b.PinImage(ctx, image, pin)
		return fmt.Sprintf("%s, %d blobs", r.Image, r.Digests), err
	}
}

// imageAction runs a pin, unpin or evict off the UI thread, says what it
// did under the field and lists the cache again.
func (a *App) imageAction(verb string, act func(context.Context, cacheBackend, string) (string, error)) {
	c := &a.cache
	image := strings.TrimSpace(c.image.Text)
	b, _ := a.backend()
	if b == nil {
		c.result.Importance = widget.DangerImportance
		c.result.SetText("Start the server first: the cache is read through it.")
		return
	}
	a.background(func() func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		what, err := act(ctx, b, image)
		return func() {
			if err != nil {
				c.result.Importance = widget.DangerImportance
				c.result.SetText(image + ": " + err.Error())
			} else {
				c.result.Importance = widget.SuccessImportance
				c.result.SetText(strings.ToUpper(verb[:1]) + verb[1:] + " " + what + ".")
			}
			a.refreshCache()
		}
	})
}

// runGC collects garbage, or previews what it would collect.
func (a *App) runGC(dryRun bool) {
	c := &a.cache
	b, _ := a.backend()
	if b == nil {
		c.gcResult.Importance = widget.DangerImportance
		c.gcResult.SetText("Start the server first: garbage collection runs in it.")
		return
	}
	c.gcPreview.Disable()
	c.gcRun.Disable()
	c.gcResult.Importance = widget.MediumImportance
	c.gcResult.SetText("Collecting…")
	a.background(func() func() {
		rep, err := b.GC(context.Background(), server.GCRequest{DryRun: dryRun})
		return func() {
			c.gcPreview.Enable()
			c.gcRun.Enable()
			if err != nil {
				c.gcResult.Importance = widget.DangerImportance
				c.gcResult.SetText(err.Error())
				return
			}
			c.gcResult.Importance = widget.SuccessImportance
			c.gcResult.SetText(model.GCText(rep))
			a.refreshCache()
		}
	})
}
