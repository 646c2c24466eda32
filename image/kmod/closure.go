package kmod

import (
	"fmt"
	"slices"
	"strings"
)

// Module is one module to ship, in load order.
type Module struct {
	Name    string   // normalized
	Path    string   // relative to the modules dir, as given to NewIndex
	Depends []string // normalized hard dependencies that are modules (not builtin)
}

// Resolved is the outcome of Closure.
type Resolved struct {
	Modules []Module // load order: each module after its depends= and softdep pre: modules
	Builtin []string // wanted names that are built into the kernel, normalized, sorted
	Ignored []string // notes on soft dependencies that could not be found, sorted
}

// Closure returns the modules to ship for the wanted names, with everything
// they need: depends= (modpost's list of modules whose symbols they use) and
// softdep pre: and post: modules, since modprobe would load those too.
//
// The order is a valid load order: every module comes after its depends= and
// softdep pre: modules. softdep post: adds a module but no ordering
// constraint, because modprobe treats it as satisfied if it is already
// loaded. Among modules free to go next, the smallest name goes first, so
// the order depends only on the modules, never on map order or input order.
//
// Built-in modules are never shipped. A wanted or depends= name that is
// neither a module nor built in is an ErrUnknownModule error; an unknown
// softdep is only noted in Ignored, as modprobe would skip it too. info
// supplies the parsed modinfo for a module path; it is called once per
// module in the closure.
func (ix *Index) Closure(wanted []string, info func(path string) (Info, error)) (Resolved, error) {
	var res Resolved
	var queue, unknown []string
	for _, w := range wanted {
		name := Normalize(w)
		switch _, ok := ix.modules[name]; {
		case ok:
			queue = append(queue, name)
		case ix.builtin[name]:
			res.Builtin = append(res.Builtin, name)
		default:
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return Resolved{}, fmt.Errorf("wanted %s: neither a module file nor in modules.builtin: %w", strings.Join(slices.Compact(unknown), ", "), ErrUnknownModule)
	}

	deps := map[string][]string{}  // name -> hard deps that are modules
	after := map[string][]string{} // name -> modules it must load after
	for len(queue) > 0 {
		name := queue[0]
		queue = queue[1:]
		if _, seen := deps[name]; seen {
			continue
		}
		p := ix.modules[name]
		inf, err := info(p)
		if err != nil {
			return Resolved{}, fmt.Errorf("module %s (%s): %w", name, p, err)
		}
		deps[name] = []string{}
		add := func(dep, kind string, order bool) error {
			d := Normalize(dep)
			switch _, ok := ix.modules[d]; {
			case ok:
				queue = append(queue, d)
				if order {
					after[name] = append(after[name], d)
				}
				if kind == "depends" {
					deps[name] = append(deps[name], d)
				}
			case ix.builtin[d]:
			case kind == "depends":
				return fmt.Errorf("module %s depends on %s, which is neither a module file nor in modules.builtin: %w", name, d, ErrUnknownModule)
			default:
				res.Ignored = append(res.Ignored, fmt.Sprintf("%s: softdep %s %s not found", name, kind, d))
			}
			return nil
		}
		for _, d := range inf.Depends {
			if err := add(d, "depends", true); err != nil {
				return Resolved{}, err
			}
		}
		for _, d := range inf.SoftdepPre {
			_ = add(d, "pre:", true)
		}
		for _, d := range inf.SoftdepPost {
			_ = add(d, "post:", false)
		}
	}

	order, err := loadOrder(after, deps)
	if err != nil {
		return Resolved{}, err
	}
	for _, name := range order {
		res.Modules = append(res.Modules, Module{Name: name, Path: ix.modules[name], Depends: deps[name]})
	}
	slices.Sort(res.Builtin)
	res.Builtin = slices.Compact(res.Builtin)
	slices.Sort(res.Ignored)
	res.Ignored = slices.Compact(res.Ignored)
	return res, nil
}

// loadOrder sorts the modules (the keys of all) topologically by the after
// relation (Kahn's algorithm), taking the smallest ready name each time.
func loadOrder(after map[string][]string, all map[string][]string) ([]string, error) {
	waiting := map[string]int{}       // name -> number of distinct modules it waits for
	unblocks := map[string][]string{} // dep -> modules waiting for it
	for name := range all {
		ds := slices.Clone(after[name])
		slices.Sort(ds)
		ds = slices.Compact(ds)
		waiting[name] = len(ds)
		for _, d := range ds {
			unblocks[d] = append(unblocks[d], name)
		}
	}
	var ready []string
	for name, n := range waiting {
		if n == 0 {
			ready = append(ready, name)
		}
	}
	slices.Sort(ready)
	var order []string
	for len(ready) > 0 {
		name := ready[0]
		ready = ready[1:]
		order = append(order, name)
		for _, m := range unblocks[name] {
			if waiting[m]--; waiting[m] == 0 {
				i, _ := slices.BinarySearch(ready, m)
				ready = slices.Insert(ready, i, m)
			}
		}
	}
	if len(order) < len(all) {
		return nil, fmt.Errorf("%s: %w", findCycle(after, waiting), ErrCycle)
	}
	return order, nil
}

// findCycle describes one cycle among the modules still waiting after the
// topological sort, as "a -> b -> a" (a loads after b, b after a),
// starting from the smallest name so the message is stable.
func findCycle(after map[string][]string, waiting map[string]int) string {
	var stuck []string
	for name, n := range waiting {
		if n > 0 {
			stuck = append(stuck, name)
		}
	}
	slices.Sort(stuck)
	// Every stuck module waits for at least one stuck module, so following
	// the smallest such dependency must revisit a module.
	pos := map[string]int{}
	var path []string
	for cur := stuck[0]; ; {
		if i, ok := pos[cur]; ok {
			return strings.Join(append(path[i:], cur), " -> ")
		}
		pos[cur] = len(path)
		path = append(path, cur)
		ds := slices.Clone(after[cur])
		slices.Sort(ds)
		next := ""
		for _, d := range ds {
			if waiting[d] > 0 {
				next = d
				break
			}
		}
		if next == "" { // cannot happen; do not loop forever if it does
			return strings.Join(path, " -> ")
		}
		cur = next
	}
}
