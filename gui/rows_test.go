package gui

import (
	"strings"
	"testing"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/test"
	"fyne.io/fyne/v2/widget"
)

// labelsIn are the texts of the labels in a container, depth first.
func labelsIn(o fyne.CanvasObject) []string {
	var out []string
	switch w := o.(type) {
	case *widget.Label:
		out = append(out, w.Text)
	case *fyne.Container:
		for _, c := range w.Objects {
			out = append(out, labelsIn(c)...)
		}
	}
	return out
}

// tapRowButton taps the button called button in the row of list whose
// label contains label.
func tapRowButton(t *testing.T, list *fyne.Container, label, button string) {
	t.Helper()
	for _, row := range list.Objects {
		if !strings.Contains(strings.Join(labelsIn(row), " "), label) {
			continue
		}
		if b := findButton(row, button); b != nil {
			test.Tap(b)
			return
		}
	}
	t.Fatalf("no row %q with a %q button in %q", label, button, labelsIn(list))
}

func findButton(o fyne.CanvasObject, text string) *widget.Button {
	switch w := o.(type) {
	case *widget.Button:
		if w.Text == text {
			return w
		}
	case *fyne.Container:
		for _, c := range w.Objects {
			if b := findButton(c, text); b != nil {
				return b
			}
		}
	}
	return nil
}

// startOn starts the server with the Start button and brings tab to the
// front once it runs.
func (f *fixture) startOn(tab string) {
	f.t.Helper()
	test.Tap(f.app.startBtn)
	f.waitState("Running on ")
	if err := f.app.ShowTab(tab); err != nil {
		f.t.Fatal(err)
	}
}
