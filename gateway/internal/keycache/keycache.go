// Package keycache is an LRU cache bounded by the bytes its values hold, with
// one load in flight per key: two jobs that need the same key set while it
// is not cached parse it once.
package keycache

import (
	"container/list"
	"context"
	"errors"
	"sync"
)

// Hooks observe the cache; any of them may be nil. They are called without
// the cache's lock held.
type Hooks struct {
	Hit   func()
	Miss  func()
	Evict func()
	Bytes func(total int64) // after every change of the bytes held
}

// Cache holds values by key. It is safe for concurrent use.
type Cache[V any] struct {
	capacity int64
	size     func(V) int64
	hooks    Hooks

	mu      sync.Mutex
	used    int64
	lru     *list.List // of *entry[V]; front is most recently used
	entries map[string]*list.Element
	loading map[string]*call[V]
}

type entry[V any] struct {
	key   string
	value V
	size  int64
	refs  int // callers of Acquire or Pin that have not released it
}

type call[V any] struct {
	done  chan struct{}
	value V
	err   error
}

// New makes a cache that holds at most capacity bytes, as measured by size.
func New[V any](capacity int64, size func(V) int64, hooks Hooks) *Cache[V] {
	return &Cache[V]{
		capacity: capacity,
		size:     size,
		hooks:    hooks,
		lru:      list.New(),
		entries:  make(map[string]*list.Element),
		loading:  make(map[string]*call[V]),
	}
}

// Get returns the value for key, calling load when it is not cached. While
// one load for a key runs, other callers for that key wait for its result
// (or for their own ctx). A value larger than the whole capacity is returned
// but not kept. hit reports whether no load was needed by this caller.
func (c *Cache[V]) Get(ctx context.Context, key string, load func(context.Context) (V, error)) (value V, hit bool, err error) {
	for {
		c.mu.Lock()
		if el, ok := c.entries[key]; ok {
			c.lru.MoveToFront(el)
			v := el.Value.(*entry[V]).value
			c.mu.Unlock()
			fire(c.hooks.Hit)
			return v, true, nil
		}
		if cl, ok := c.loading[key]; ok {
			c.mu.Unlock()
			select {
			case <-cl.done:
			case <-ctx.Done():
				var zero V
				return zero, false, ctx.Err()
			}
			if cl.err == nil {
				fire(c.hooks.Hit)
				return cl.value, true, nil
			}
			// The leader's own context ended its load: try again with ours.
			if isContextErr(cl.err) && ctx.Err() == nil {
				continue
			}
			var zero V
			return zero, false, cl.err
		}
		cl := &call[V]{done: make(chan struct{})}
		c.loading[key] = cl
		c.mu.Unlock()
		fire(c.hooks.Miss)
		return c.lead(ctx, key, cl, load)
	}
}

func (c *Cache[V]) lead(ctx context.Context, key string, cl *call[V], load func(context.Context) (V, error)) (V, bool, error) {
	defer close(cl.done)
	// A panic in load must not leave waiters blocked forever.
	defer func() {
		if p := recover(); p != nil {
			c.mu.Lock()
			delete(c.loading, key)
			c.mu.Unlock()
			cl.err = errors.New("keycache: load panicked")
			panic(p)
		}
	}()
	cl.value, cl.err = load(ctx)

	var evicted int
	c.mu.Lock()
	delete(c.loading, key)
	if cl.err == nil {
		evicted = c.add(key, cl.value)
	}
	used := c.used
	c.mu.Unlock()
	for range evicted {
		fire(c.hooks.Evict)
	}
	if cl.err == nil && c.hooks.Bytes != nil {
		c.hooks.Bytes(used)
	}
	return cl.value, false, cl.err
}

// add stores a loaded value, evicting the least recently used ones to make
// room. The caller holds mu. It returns how many entries were evicted.
func (c *Cache[V]) add(key string, v V) int {
	n := c.size(v)
	if n > c.capacity || n < 0 {
		return 0
	}
	evicted := 0
	for c.used+n > c.capacity {
		back := c.lru.Back()
		if back == nil {
			break
		}
		c.removeElement(back)
		evicted++
	}
	c.entries[key] = c.lru.PushFront(&entry[V]{key: key, value: v, size: n})
	c.used += n
	return evicted
}

func (c *Cache[V]) removeElement(el *list.Element) {
	e := c.lru.Remove(el).(*entry[V])
	delete(c.entries, e.key)
	c.used -= e.size
}

// Bytes returns the bytes held.
func (c *Cache[V]) Bytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.used
}

// Len returns the number of values held.
func (c *Cache[V]) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len()
}

func isContextErr(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
}

func fire(f func()) {
	if f != nil {
		f()
	}
}

// Acquire is Get, and pins the value while the caller uses it: a pinned
// value does not count in IdleBytes and EvictIdle leaves it. release
// unpins it; it is safe to call more than once. A value the cache does not
// keep (larger than its capacity) is returned with a release that does
// nothing.
func (c *Cache[V]) Acquire(ctx context.Context, key string, load func(context.Context) (V, error)) (value V, hit bool, release func(), err error) {
	value, hit, err = c.Get(ctx, key, load)
	if err != nil {
		return value, hit, func() {}, err
	}
	// The entry under key holds the same value (a key names its content);
	// when it is not kept, the caller uses what it got, unpinned.
	release, _, _ = c.Pin(key)
	return value, hit, release, nil
}

// Pin pins the value cached for key, if any, without loading it, and
// returns its size.
func (c *Cache[V]) Pin(key string) (release func(), size int64, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	el, ok := c.entries[key]
	if !ok {
		return func() {}, 0, false
	}
	e := el.Value.(*entry[V])
	return c.pinLocked(e), e.size, true
}

// pinLocked pins e; the caller holds mu.
func (c *Cache[V]) pinLocked(e *entry[V]) func() {
	e.refs++
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			e.refs--
			c.mu.Unlock()
		})
	}
}

// IdleBytes returns the bytes of cached values nobody has pinned.
func (c *Cache[V]) IdleBytes() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	var n int64
	for el := c.lru.Front(); el != nil; el = el.Next() {
		if e := el.Value.(*entry[V]); e.refs == 0 {
			n += e.size
		}
	}
	return n
}

// EvictIdle evicts the least recently used values nobody has pinned until
// at least want bytes are freed or no idle value is left, and returns the
// bytes freed.
func (c *Cache[V]) EvictIdle(want int64) int64 {
	var freed int64
	evicted := 0
	c.mu.Lock()
	for el := c.lru.Back(); el != nil && freed < want; {
		prev := el.Prev()
		if e := el.Value.(*entry[V]); e.refs == 0 {
			freed += e.size
			c.removeElement(el)
			evicted++
		}
		el = prev
	}
	used := c.used
	c.mu.Unlock()
	for range evicted {
		fire(c.hooks.Evict)
	}
	if evicted > 0 && c.hooks.Bytes != nil {
		c.hooks.Bytes(used)
	}
	return freed
}
