package calc

import "maps"

// cow is a map that States share: once share has handed it out, the next
// change copies it first, so a State's maps never change and a State
// made while nothing changed costs no copy.
type cow[K comparable, V any] struct {
	m      map[K]V
	shared bool
}

func newCow[K comparable, V any]() cow[K, V] { return cow[K, V]{m: map[K]V{}} }

func (c *cow[K, V]) set(k K, v V) {
	c.own()
	c.m[k] = v
}

func (c *cow[K, V]) del(k K) {
	if _, ok := c.m[k]; ok {
		c.own()
		delete(c.m, k)
	}
}

// share returns the map, which must then not be modified.
func (c *cow[K, V]) share() map[K]V {
	c.shared = true
	return c.m
}

func (c *cow[K, V]) own() {
	if c.shared {
		c.m, c.shared = maps.Clone(c.m), false
	}
}
