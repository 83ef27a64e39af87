package gui

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"fyne.io/fyne/v2"
	"fyne.io/fyne/v2/container"
	"fyne.io/fyne/v2/theme"
	"fyne.io/fyne/v2/widget"

	"github.com/wharf-registry/wharf/gui/model"
	"github.com/wharf-registry/wharf/setup"
)

// setupCard is the "Use with" tab's part for one client: the same
// `wharf setup CLIENT` a terminal user runs, previewed, then applied as
// the user, through pkexec, or pasted into a terminal.
type setupCard struct {
	client   model.SetupClient
	plan     model.SetupPlan
	Preview  *widget.Button
	Apply    *widget.Button
	Copy     *widget.Button
	Status   *widget.Label
	Output   *widget.Label
	Terminal *widget.Label
}

// wharfBinary is the wharf command beside wharf-desktop, else on PATH.
func wharfBinary() string {
	if exe, err := os.Executable(); err == nil {
		if p := filepath.Join(filepath.Dir(exe), "wharf"); isExecutable(p) {
			return p
		}
	}
	if p, err := exec.LookPath("wharf"); err == nil {
		return p
	}
	return "wharf"
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

func (a *App) buildUseWith() fyne.CanvasObject {
	intro := widget.NewLabel("Point this machine's container clients at wharf. Each button runs `wharf setup`, " +
		"the same command you can run in a terminal: it shows the change first, writes it with a backup " +
		"next to the file, reloads the client, and reports success only once wharf saw a pull come through.")
	intro.Wrapping = fyne.TextWrapWord
	box := container.NewVBox(intro)
	pkexec, _ := exec.LookPath("pkexec")
	dockerCfg := setup.FindDocker(os.Geteuid(), os.Getenv, func(p string) bool { _, err := os.Stat(p); return err == nil }).ConfigPath
	for _, c := range model.SetupClients(dockerCfg, setup.DefaultHostsDir, setup.DefaultRegistriesDropIn) {
		if t, ok := a.opts.SetupTargets[c.Name]; ok {
			c.Target = t
		}
		card := a.newSetupCard(c, model.Writable(c.Target), pkexec)
		a.setupCards = append(a.setupCards, card)
		box.Add(widget.NewCard(c.Title, c.Target, container.NewVBox(
			container.NewHBox(card.Preview, card.Apply, card.Status),
			card.Output,
			container.NewBorder(nil, nil, nil, card.Copy, card.Terminal),
		)))
	}
	return container.NewVScroll(box)
}

func (a *App) newSetupCard(c model.SetupClient, canWrite bool, pkexec string) *setupCard {
	plan := model.PlanSetup(c, a.opts.WharfBin, "", a.opts.ConfigPath, canWrite, pkexec)
	s := &setupCard{client: c, plan: plan, Status: widget.NewLabel(""), Output: widget.NewLabel(""), Terminal: widget.NewLabel("")}
	s.Output.Wrapping = fyne.TextWrapBreak
	s.Output.TextStyle = fyne.TextStyle{Monospace: true}
	s.Output.Hide() // until a command printed something
	s.Terminal.Wrapping = fyne.TextWrapBreak
	s.Terminal.TextStyle = fyne.TextStyle{Monospace: true}
	s.Preview = widget.NewButtonWithIcon("Show the change", theme.VisibilityIcon(), func() { a.runSetup(s, s.plan.Preview, "preview") })
	label := "Apply and prove"
	switch plan.Via {
	case "pkexec":
		label = "Apply as administrator"
	case "terminal":
		label = "Apply (needs a terminal)"
	}
	s.Apply = widget.NewButtonWithIcon(label, theme.ConfirmIcon(), func() { a.runSetup(s, s.plan.Apply, "apply") })
	if plan.Apply == nil {
		s.Apply.Disable()
		s.Terminal.SetText("Only root can change " + c.Target + ", and this desktop has no pkexec. Run:\n" + plan.Terminal)
	} else {
		s.Terminal.SetText("Or in a terminal: " + plan.Terminal)
	}
	s.Copy = widget.NewButtonWithIcon("Copy", theme.ContentCopyIcon(), func() { a.fa.Clipboard().SetContent(plan.Terminal) })
	return s
}

// runSetup runs argv off the UI thread and shows its output and verdict
// in the card: exit status 0 is the command's proof.
func (a *App) runSetup(s *setupCard, argv []string, what string) {
	s.Preview.Disable()
	s.Apply.Disable()
	s.Status.SetText("running…")
	go func() {
		timeout := 30 * time.Second
		if what == "apply" {
			timeout = 5 * time.Minute // a proof pull of a cold image, and an administrator typing a password
		}
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
		status := "done"
		switch {
		case err != nil && what == "apply":
			status = "not applied or not proven: " + err.Error()
		case err != nil:
			status = "failed: " + err.Error()
		case what == "apply":
			status = "applied: wharf saw the test pull"
		}
		a.toUI(func() {
			s.Output.SetText(strings.TrimSpace(string(out)))
			s.Output.Show()
			s.Status.SetText(status)
			s.Preview.Enable()
			if s.plan.Apply != nil {
				s.Apply.Enable()
			}
			a.setupRuns++
		})
	}()
}
