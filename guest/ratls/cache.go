package ratls

import (
	"container/list"
	"crypto/sha256"
)

// lru is a bounded least-recently-used map from SHA-256 of a certificate's
// DER to its verified result. It holds positive results only, and is
// guarded by the Verifier's mutex.
type lru struct {
	max   int
	order *list.List // front: most recently used; values are *lruEntry
	m     map[[sha256.Size]byte]*list.Element
}

type lruEntry struct {
	key [sha256.Size]byte
	res *Result
}

func newLRU(max int) *lru {
	return &lru{max: max, order: list.New(), m: make(map[[sha256.Size]byte]*list.Element)}
}

func (c *lru) get(k [sha256.Size]byte) *Result {
	e, ok := c.m[k]
	if !ok {
		return nil
	}
	c.order.MoveToFront(e)
	return e.Value.(*lruEntry).res
}

func (c *lru) add(k [sha256.Size]byte, r *Result) {
	if e, ok := c.m[k]; ok {
		e.Value.(*lruEntry).res = r
		c.order.MoveToFront(e)
		return
	}
	c.m[k] = c.order.PushFront(&lruEntry{key: k, res: r})
	for c.order.Len() > c.max {
		last := c.order.Back()
		c.order.Remove(last)
		delete(c.m, last.Value.(*lruEntry).key)
	}
}

func (c *lru) remove(k [sha256.Size]byte) {
	if e, ok := c.m[k]; ok {
		c.order.Remove(e)
		delete(c.m, k)
	}
}

func (c *lru) len() int { return c.order.Len() }
