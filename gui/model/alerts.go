package model

import (
	"fmt"

	"github.com/wharf-registry/wharf/server"
)

// nearBudget is the share of the cache budget at which the app warns:
// eviction is about to start taking the least recently used images.
const nearBudget = 0.9

// Alert is a desktop notification.
type Alert struct{ Title, Content string }

// Alerts turns successive reports into the notifications the app sends:
// an upstream that starts failing or is rate-limited (and recovers), and
// the cache nearing its budget. Each fires once per change, not on every
// report.
type Alerts struct {
	health map[string]string
	near   bool
}

// Next returns the alerts r calls for, given the reports before it.
func (a *Alerts) Next(r *server.Report) []Alert {
	if r == nil {
		return nil
	}
	if a.health == nil {
		a.health = map[string]string{}
	}
	var out []Alert
	for _, p := range r.Proxies {
		was := a.health[p.Name]
		a.health[p.Name] = p.Health
		if p.Health == was {
			continue
		}
		switch p.Health {
		case "failing":
			msg := fmt.Sprintf("%s is not answering; wharf serves what it has cached", p.Upstream)
			if p.LastError != "" {
				msg += ": " + p.LastError
			}
			out = append(out, Alert{"Upstream failing: " + p.Name, msg})
		case "rate-limited":
			out = append(out, Alert{"Upstream rate limit: " + p.Name, p.Upstream + " refuses pulls until its limit resets; cached images still pull"})
		case "ok":
			if was == "failing" || was == "rate-limited" {
				out = append(out, Alert{"Upstream back: " + p.Name, p.Upstream + " answers again"})
			}
		}
	}
	b := r.Budget
	near := b.MaxBytes > 0 && float64(b.UsedBytes) >= nearBudget*float64(b.MaxBytes)
	if near && !a.near {
		out = append(out, Alert{"Cache nearly full", fmt.Sprintf("%s of %s used (%s); the least recently used images will be evicted. Raise cache.max_size or pin what you need.",
			Bytes(b.UsedBytes), Bytes(b.MaxBytes), Percent(float64(b.UsedBytes)/float64(b.MaxBytes)))})
	}
	a.near = near
	return out
}
