package settings

import (
	"reflect"

	"go.yaml.in/yaml/v3"
)

// Helpers over yaml.v3 nodes. Values are replaced in place so the comments
// attached to a key (and to the value being replaced) stay where they were.

func clone(n *yaml.Node) *yaml.Node {
	if n == nil {
		return nil
	}
	c := *n
	c.Content = make([]*yaml.Node, len(n.Content))
	for i, k := range n.Content {
		c.Content[i] = clone(k)
	}
	return &c
}

// value is the value node of key in mapping m, or nil.
func value(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

// encode turns a Go value into a node (strings that read as numbers or
// booleans come out quoted).
func encode(v any) *yaml.Node {
	var n yaml.Node
	if err := n.Encode(v); err != nil {
		panic(err) // only called with strings, bools and string slices
	}
	return &n
}

// set makes key's value v, keeping the comments of the old value.
func set(m *yaml.Node, key string, v any) {
	n := encode(v)
	if old := value(m, key); old != nil {
		n.HeadComment, n.LineComment, n.FootComment = old.HeadComment, old.LineComment, old.FootComment
		if m.Style == yaml.FlowStyle || old.Style == yaml.FlowStyle {
			n.Style |= old.Style & yaml.FlowStyle
		}
		*old = *n
		return
	}
	m.Content = append(m.Content, encode(key), n)
}

// del removes key from mapping m.
func del(m *yaml.Node, key string) {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			m.Content = append(m.Content[:i], m.Content[i+2:]...)
			return
		}
	}
}

// field is a key whose zero value means "absent".
type field struct {
	key string
	v   any
}

// setFields sets each field, removing those with a zero value.
func setFields(m *yaml.Node, fields ...field) {
	for _, f := range fields {
		if reflect.ValueOf(f.v).IsZero() {
			del(m, f.key)
		} else {
			set(m, f.key, f.v)
		}
	}
}

// section is the mapping under key, created (block style) when missing.
func section(m *yaml.Node, key string) *yaml.Node {
	if v := value(m, key); v != nil && v.Kind == yaml.MappingNode {
		return v
	}
	n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	if old := value(m, key); old != nil {
		n.HeadComment, n.LineComment = old.HeadComment, old.LineComment
		*old = *n
		return old
	}
	m.Content = append(m.Content, encode(key), n)
	return n
}

// list is the sequence under key, created when missing or null.
func list(m *yaml.Node, key string) *yaml.Node {
	if v := value(m, key); v != nil && v.Kind == yaml.SequenceNode {
		return v
	}
	n := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
	if old := value(m, key); old != nil {
		*old = *n
		return old
	}
	m.Content = append(m.Content, encode(key), n)
	return n
}

// named finds the item of a sequence of mappings whose name is name.
func named(seq *yaml.Node, name string) (int, *yaml.Node) {
	if seq == nil {
		return -1, nil
	}
	for i, it := range seq.Content {
		if v := value(it, "name"); v != nil && v.Value == name {
			return i, it
		}
	}
	return -1, nil
}

// newItem is an empty mapping for a sequence, in the sequence's style.
func newItem(seq *yaml.Node) *yaml.Node {
	return &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map", Style: seq.Style & yaml.FlowStyle}
}
