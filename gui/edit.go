package gui

import (
	"context"
	"fmt"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/wharf-registry/wharf/gui/model"
	"github.com/wharf-registry/wharf/gui/settings"
	"github.com/wharf-registry/wharf/server"
)

// running is the server when it runs, else nil.
func (a *App) running() *server.Server {
	srv, _, life, _ := a.c.server()
	if life.Phase != model.Running {
		return nil
	}
	return srv
}

// editConfig is every edit a screen makes to the config file: load the
// file as it is now (so an edit by hand is never overwritten), edit,
// save atomically, and hand the result to the running server. An edit
// that fails validation leaves the file's bytes as they were.
func (a *App) editConfig(edit func(*settings.Doc) error) (settings.Change, error) {
	doc, err := settings.Load(a.opts.ConfigPath)
	if err != nil {
		return settings.Change{}, err
	}
	if err := edit(doc); err != nil {
		return settings.Change{}, err
	}
	ch, err := doc.Save()
	if err != nil {
		return ch, err
	}
	if srv := a.running(); srv != nil {
		applied, err := doc.Apply(srv)
		if err != nil {
			return ch, fmt.Errorf("saved, but the running server refused it (%w); it applies at the next Restart", err)
		}
		ch = applied
	}
	return ch, nil
}

// loadDoc reads the config for a screen's lists; a file that does not
// parse is reported on the screen, not fixed.
func (a *App) loadDoc() (*settings.Doc, error) { return settings.Load(a.opts.ConfigPath) }

// background runs work off the UI thread (a network test, a cache scan)
// and its result on it. Like the pump, it reaches widgets only through
// Options.Do.
func (a *App) background(work func() (show func())) {
	go func() {
		show := work()
		a.toUI(show)
	}()
}

// runTest runs a "test" button's check (an upstream, a directory) off
// the UI thread, with the button disabled meanwhile, and shows its
// sentence in result: green when it worked, red when not.
func (a *App) runTest(btn *widget.Button, result *widget.Label, pending string, check func(context.Context) settings.Result) {
	result.Importance = widget.MediumImportance
	result.SetText(pending)
	btn.Disable()
	a.background(func() func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		res := check(ctx)
		return func() {
			btn.Enable()
			result.Importance = widget.SuccessImportance
			if !res.OK {
				result.Importance = widget.DangerImportance
			}
			result.SetText(res.Message)
		}
	})
}

// outcome is the line under a form: what an edit did, or why not, with a
// Restart button when the change waits for one.
type outcome struct {
	a       *App
	msg     *widget.Label
	restart *widget.Button
	box     *fyne.Container
}

func (a *App) newOutcome() *outcome {
	o := &outcome{a: a, msg: widget.NewLabel("")}
	o.msg.Wrapping = fyne.TextWrapWord
	o.restart = widget.NewButtonWithIcon("Restart now", theme.MediaReplayIcon(), func() {
		o.restart.Hide()
		if err := a.Restart(); err != nil {
			o.fail(err)
		}
	})
	o.restart.Hide()
	o.box = container.NewBorder(nil, nil, nil, o.restart, o.msg)
	o.box.Hide() // until there is something to say
	return o
}

// saved shows what an editConfig call did.
func (o *outcome) saved(ch settings.Change, err error) {
	if err != nil {
		o.fail(err)
		return
	}
	o.box.Show()
	o.msg.Importance = widget.SuccessImportance
	switch {
	case o.a.running() == nil:
		o.msg.SetText("Saved. The server uses it when it starts.")
		o.restart.Hide()
	case ch.NeedsRestart():
		o.msg.SetText("Saved: " + ch.String() + ".")
		o.restart.Show()
	default:
		o.msg.SetText("Saved: " + ch.String() + ".")
		o.restart.Hide()
	}
	o.msg.Refresh()
}

// say shows a sentence that is not an error; fail shows one that is.
func (o *outcome) say(ok bool, text string) {
	o.box.Show()
	o.msg.Importance = widget.SuccessImportance
	if !ok {
		o.msg.Importance = widget.DangerImportance
	}
	o.msg.SetText(text)
	o.msg.Refresh()
}

func (o *outcome) fail(err error) { o.say(false, err.Error()); o.restart.Hide() }

func entry(placeholder string) *widget.Entry {
	e := widget.NewEntry()
	e.SetPlaceHolder(placeholder)
	return e
}

// note is a sentence that wraps: in a grid column an unwrapped label
// would widen every column, and the window with them.
func note(text string) *widget.Label {
	l := widget.NewLabel(text)
	l.Wrapping = fyne.TextWrapWord
	return l
}

// toUI hands f to the UI thread (Options.Do), unless Fyne's loop has
// already returned: then there is no window left to update, and fyne.Do
// would run f on this goroutine, touching widgets off the UI thread.
func (a *App) toUI(f func()) {
	if a.loopDone.Load() {
		return
	}
	a.opts.Do(f)
}
