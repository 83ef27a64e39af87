package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Cache bounds what proxies keep on disk.
type Cache struct {
	// MaxSize is the budget for proxied content ("20GiB", "300MiB"; 0 or
	// absent: no limit). Hosted content is never evicted and not counted.
	MaxSize Size `yaml:"max_size,omitempty"`
	// HighWatermark and LowWatermark are fractions of MaxSize: eviction
	// starts above the high one and stops below the low one.
	HighWatermark float64 `yaml:"high_watermark,omitempty"`
	LowWatermark  float64 `yaml:"low_watermark,omitempty"`
	// MaxUnused evicts content nobody read for this long ("30d", "12h").
	MaxUnused Duration `yaml:"max_unused,omitempty"`
	// Pin lists images never evicted: PROXY/REPO:TAG patterns where * in
	// the tag matches anything ("hub/library/golang:1.*").
	Pin []string `yaml:"pin,omitempty"`
	// Proxies are budgets of single proxies, by proxy name, within the
	// global one: `proxies: {ghcr: {max_size: 5GiB, max_unused: 7d}}`.
	// The watermarks apply to them too.
	Proxies map[string]ProxyBudget `yaml:"proxies,omitempty"`
}

// ProxyBudget bounds what one proxy keeps.
type ProxyBudget struct {
	MaxSize   Size     `yaml:"max_size,omitempty"`
	MaxUnused Duration `yaml:"max_unused,omitempty"`
}

// Size is a byte count written with units in YAML.
type Size int64

// FormatBytes writes n bytes for people: "512 B", "1.5 GiB".
func FormatBytes(n int64) string {
	const unit = 1024
	if n < 0 {
		return "-" + FormatBytes(-n)
	}
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// ParseSize reads "300MiB", "20GiB", "1.5GB", "512" (bytes).
func ParseSize(s string) (Size, error) {
	t := strings.TrimSpace(s)
	i := len(t)
	for i > 0 && (t[i-1] < '0' || t[i-1] > '9') && t[i-1] != '.' {
		i--
	}
	num, unit := strings.TrimSpace(t[:i]), strings.ToLower(strings.TrimSpace(t[i:]))
	mult, ok := map[string]float64{
		"": 1, "b": 1,
		"k": 1 << 10, "kib": 1 << 10, "kb": 1e3,
		"m": 1 << 20, "mib": 1 << 20, "mb": 1e6,
		"g": 1 << 30, "gib": 1 << 30, "gb": 1e9,
		"t": 1 << 40, "tib": 1 << 40, "tb": 1e12,
	}[unit]
	v, err := strconv.ParseFloat(num, 64)
	if !ok || err != nil || v < 0 {
		return 0, fmt.Errorf("%q is not a size (use e.g. 300MiB, 20GiB, 1.5TB)", s)
	}
	return Size(v * mult), nil
}

// UnmarshalYAML accepts a number of bytes or a string with a unit.
func (z *Size) UnmarshalYAML(unmarshal func(any) error) error {
	var s string
	if err := unmarshal(&s); err != nil {
		return err
	}
	v, err := ParseSize(s)
	if err != nil {
		return err
	}
	*z = v
	return nil
}

// MarshalYAML writes the size with a binary unit.
func (z Size) MarshalYAML() (any, error) { return z.String(), nil }

func (z Size) String() string {
	v := int64(z)
	for _, u := range []struct {
		n    int64
		name string
	}{{1 << 40, "TiB"}, {1 << 30, "GiB"}, {1 << 20, "MiB"}, {1 << 10, "KiB"}} {
		if v >= u.n && v%u.n == 0 {
			return strconv.FormatInt(v/u.n, 10) + u.name
		}
	}
	return strconv.FormatInt(v, 10)
}

// ParseDuration extends time.ParseDuration with days ("30d", "1d12h").
func ParseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if d, rest, ok := strings.Cut(s, "d"); ok {
		days, err := strconv.Atoi(d)
		if err != nil {
			return 0, fmt.Errorf("%q is not a duration (use e.g. 30s, 5m, 12h, 30d)", s)
		}
		var extra time.Duration
		if rest != "" {
			if extra, err = time.ParseDuration(rest); err != nil {
				return 0, fmt.Errorf("%q is not a duration (use e.g. 30s, 5m, 12h, 30d)", s)
			}
		}
		return time.Duration(days)*24*time.Hour + extra, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration (use e.g. 30s, 5m, 12h, 30d)", s)
	}
	return d, nil
}

func (c *Config) validateCache(add func(key, format string, args ...any)) {
	cc := c.Cache
	if cc.HighWatermark < 0 || cc.HighWatermark > 1 {
		add("cache.high_watermark", "must be a fraction between 0 and 1 (e.g. 0.95)")
	}
	if cc.LowWatermark < 0 || cc.LowWatermark > 1 {
		add("cache.low_watermark", "must be a fraction between 0 and 1 (e.g. 0.85)")
	}
	if cc.HighWatermark > 0 && cc.LowWatermark > 0 && cc.LowWatermark >= cc.HighWatermark {
		add("cache.low_watermark", "must be below high_watermark")
	}
	if cc.MaxUnused < 0 {
		add("cache.max_unused", "must not be negative")
	}
	for i, p := range cc.Pin {
		if _, _, err := SplitPin(p); err != nil {
			add(fmt.Sprintf("cache.pin[%d]", i), "%v", err)
		}
	}
	for name, b := range cc.Proxies {
		key := "cache.proxies." + name
		found := false
		for _, p := range c.Proxies {
			found = found || p.Name == name
		}
		if !found {
			add(key, "there is no proxy named %q (proxies: %s)", name, c.ProxyNames())
		}
		if b.MaxSize < 0 {
			add(key+".max_size", "must not be negative")
		}
		if b.MaxUnused < 0 {
			add(key+".max_unused", "must not be negative")
		}
		if b.MaxSize == 0 && b.MaxUnused == 0 {
			add(key, "set max_size, max_unused or both")
		}
	}
}

// ProxyNames lists the proxy namespaces for messages: "hub, ghcr", or
// "none configured".
func (c *Config) ProxyNames() string {
	var names []string
	for _, p := range c.Proxies {
		names = append(names, p.Name)
	}
	if len(names) == 0 {
		return "none configured"
	}
	return strings.Join(names, ", ")
}

// SplitPin splits a pin rule "REPO:TAGPATTERN" (or "REPO@DIGEST").
func SplitPin(rule string) (repo, tag string, err error) {
	if r, d, ok := strings.Cut(rule, "@"); ok {
		return r, "@" + d, nil
	}
	i := strings.LastIndex(rule, ":")
	if i <= 0 || strings.Contains(rule[i:], "/") {
		return "", "", fmt.Errorf("%q is not NAME:TAG (a * in the tag matches anything)", rule)
	}
	return rule[:i], rule[i+1:], nil
}
