package config

import "time"

// GC schedules garbage collection of hosted content: blobs that no
// manifest references any more, after manifests or tags were deleted.
type GC struct {
	// Schedule is how often a collection runs ("24h"; "0": never, run
	// `wharf gc` instead). Absent: DefaultGCSchedule.
	Schedule Duration `yaml:"schedule"`
	// Grace keeps content uploaded or referenced more recently than this,
	// so pushes in progress are never disturbed. Absent: DefaultGCGrace.
	Grace Duration `yaml:"grace"`

	set bool // the gc section was in the file; absent keys keep defaults
}

// Defaults of the gc section.
const (
	DefaultGCSchedule = 24 * time.Hour
	DefaultGCGrace    = time.Hour
)

// UnmarshalYAML starts from the defaults so that a section setting only
// one key keeps the default of the other, while an explicit 0 stays 0.
func (g *GC) UnmarshalYAML(unmarshal func(any) error) error {
	type plain GC
	p := plain{Schedule: Duration(DefaultGCSchedule), Grace: Duration(DefaultGCGrace)}
	if err := unmarshal(&p); err != nil {
		return err
	}
	*g = GC(p)
	g.set = true
	return nil
}

func (c *Config) gcDefaults() {
	if !c.GC.set {
		c.GC = GC{Schedule: Duration(DefaultGCSchedule), Grace: Duration(DefaultGCGrace), set: true}
	}
}

func (c *Config) validateGC(add func(key, format string, args ...any)) {
	if c.GC.Schedule < 0 {
		add("gc.schedule", "must not be negative (0 turns scheduled collection off)")
	} else if c.GC.Schedule > 0 && c.GC.Schedule.Std() < time.Second {
		add("gc.schedule", "%s is too often; use 1s or more (24h is usual) (0 turns scheduled collection off)", c.GC.Schedule.Std())
	}
	if c.GC.Grace < 0 {
		add("gc.grace", "must not be negative")
	}
}
