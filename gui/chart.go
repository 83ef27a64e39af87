package gui

import (
	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/canvas"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/wharf-registry/wharf/gui/model"
)

// savedChart draws bytes saved over time as a line over a baseline, with
// the largest value as its scale.
type savedChart struct {
	widget.BaseWidget
	pts []model.Point
}

func newSavedChart() *savedChart {
	c := &savedChart{}
	c.ExtendBaseWidget(c)
	return c
}

// set replaces the samples (UI thread).
func (c *savedChart) set(pts []model.Point) {
	c.pts = append(c.pts[:0], pts...)
	c.Refresh()
}

func (c *savedChart) CreateRenderer() fyne.WidgetRenderer {
	r := &chartRenderer{c: c, base: canvas.NewLine(theme.Color(theme.ColorNameSeparator)), max: canvas.NewText("", theme.Color(theme.ColorNamePlaceHolder)),
		empty: canvas.NewText("Nothing saved yet: pull an image twice", theme.Color(theme.ColorNamePlaceHolder))}
	r.max.TextSize = theme.CaptionTextSize()
	r.base.StrokeWidth = 1
	return r
}

type chartRenderer struct {
	c     *savedChart
	base  *canvas.Line
	max   *canvas.Text
	empty *canvas.Text
	segs  []*canvas.Line
	size  fyne.Size
}

func (r *chartRenderer) Layout(size fyne.Size) {
	r.size = size
	r.draw()
}

func (r *chartRenderer) MinSize() fyne.Size { return fyne.NewSize(200, 120) }

func (r *chartRenderer) Refresh() { r.draw() }

func (r *chartRenderer) draw() {
	size, pts := r.size, r.c.pts
	pad := float32(4)
	top := r.max.MinSize().Height + pad
	r.base.Position1 = fyne.NewPos(0, size.Height-1)
	r.base.Position2 = fyne.NewPos(size.Width, size.Height-1)
	var peak int64
	for _, p := range pts {
		peak = max(peak, p.Bytes)
	}
	r.empty.Hidden = peak > 0
	r.empty.Move(fyne.NewPos(pad, size.Height/2-r.empty.MinSize().Height/2))
	r.max.Text = ""
	if peak > 0 {
		r.max.Text = model.Bytes(peak)
	}
	r.max.Move(fyne.NewPos(pad, 0))
	r.max.Refresh()
	n := len(pts) - 1
	if peak == 0 || n < 1 {
		n = 0
	}
	for len(r.segs) < n {
		l := canvas.NewLine(theme.Color(theme.ColorNamePrimary))
		l.StrokeWidth = 2
		r.segs = append(r.segs, l)
	}
	for i, l := range r.segs {
		l.Hidden = i >= n
	}
	if n == 0 {
		return
	}
	t0, t1 := pts[0].T, pts[len(pts)-1].T
	span := float32(t1.Sub(t0))
	h := size.Height - top - 1
	at := func(p model.Point) fyne.Position {
		x := float32(0)
		if span > 0 {
			x = float32(p.T.Sub(t0)) / span * size.Width
		}
		return fyne.NewPos(x, top+h-float32(p.Bytes)/float32(peak)*h)
	}
	for i := 0; i < n; i++ {
		r.segs[i].Position1, r.segs[i].Position2 = at(pts[i]), at(pts[i+1])
		r.segs[i].Refresh()
	}
}

func (r *chartRenderer) Objects() []fyne.CanvasObject {
	objs := []fyne.CanvasObject{r.base, r.max, r.empty}
	for _, l := range r.segs {
		objs = append(objs, l)
	}
	return objs
}

func (r *chartRenderer) Destroy() {}
