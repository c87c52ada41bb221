package he

import (
	"fmt"
	"math"
	"sort"
	"strings"
)

// Bootstrap placement.
//
// When a circuit needs more levels than the parameters hold (L residual
// levels) and the preset bootstraps, the compiler chooses where to refresh
// values, in the manner of Orion (Ebel, Garimella, Reagen,
// arXiv:2311.03470: a shortest path over the levels of the network's
// layers, residual blocks collapsed into edges first), but solved exactly
// on the circuit's DAG:
//
// The nodes are visited in topological order. The state after a node is
// the level at which each live value (computed, still to be read) is
// available; a reader may take a value at any level at or below it (a level
// drop is free). Before a node runs, any of its inputs may be bootstrapped
// (its availability becomes L, for this reader and every later one); the
// node then runs at an input level ℓ between its depth and the lowest
// availability of its inputs, at the cost of its primitives at ℓ, and its
// output is available at ℓ − depth. The programme keeps, per state, the
// cheapest way to reach it; at a value every path goes through (the end of
// a residual block, of a ReLU's x·sign(x), of a max-pool tree) the state
// has one entry, so each such block is solved as a unit, for every
// (entry level, exit level) pair, before the chain around it: it is
// Orion's shortest path with the blocks' aggregated edges, and it also
// finds when a bootstrap outside a block (one refresh shared by the skip
// and the branch) beats bootstraps inside it.
//
// The cost of a node at a level comes from the cost table below; the
// bootstrap's own cost from the same table applied to the bootstrapping
// circuit's phases at their levels. The result minimises the estimated
// evaluation time, the sum of both: a bootstrap costs about a hundred key
// switches, so the number of bootstraps dominates, then the levels the
// other nodes run at.

// Cost table, in units of one key switch (a rotation or a
// relinearisation) at the residual parameters' top level. A key switch at
// level ℓ with k special primes decomposes into ceil((ℓ+1)/k) gadget rows,
// each a product in Q_ℓ·P: its time scales as ceil((ℓ+1)/k)·(ℓ+1+k) and is
// normalised to 1 at the top level. The weights inside a linear step are
// the linear planner's (linear.go: measured at logN 14 on this project's
// 2-core machine: a hoisted baby step a sixth of a key switch, a
// plaintext multiplication in QP a twelfth, the one decomposition a
// third); element-wise products (tensor, rescale) scale with the ℓ+1
// moduli. BenchmarkBootstrapCostModel measures the same quantities on the
// test bootstrapping preset and prints them beside this model.
const (
	// placeTensor is the tensor product and rescale of a ciphertext
	// multiplication, in key switches (four products in Q, one rescale).
	placeTensor = 1.0 / 3
	// maxPlaceStates bounds the states kept per node: circuits whose live
	// values are many (wide max-pool trees) keep the cheapest ones, which
	// makes the placement a heuristic there (placement.exact false).
	maxPlaceStates = 1 << 14
)

// placeCost prices nodes and bootstraps.
type placeCost struct {
	top   int // residual max level L
	k     int // residual special primes
	norm  float64
	boot  float64 // one bootstrap
	costs []func(level int) float64
}

// keySwitch is the cost of one key switch at level with kp special primes.
func (pc *placeCost) keySwitch(level, kp int) float64 {
	return float64((level+kp)/kp*(level+1+kp)) / pc.norm
}

func (pc *placeCost) ks(level int) float64 { return pc.keySwitch(level, pc.k) }

// moduli is the cost of an element-wise operation at level relative to
// the top level (in QP: k special primes too).
func (pc *placeCost) moduli(level int) float64 {
	return float64(level+1+pc.k) / float64(pc.top+1+pc.k)
}

// newPlaceCost builds the cost table of circuit c (layouts chosen) for
// params with bootstrapping parameters bp.
func newPlaceCost(c *circuit, layouts []*layout, params *Params, bp *bootParams) *placeCost {
	p := params.ckks
	pc := &placeCost{top: p.MaxLevel(), k: p.PCount()}
	pc.norm = float64((pc.top + pc.k) / pc.k * (pc.top + 1 + pc.k))
	pc.boot = bootstrapCost(pc, bp)
	for _, n := range c.nodes {
		switch n.kind {
		case kindLinear:
			// Rotations of a BSGS split of d diagonals: about 2·sqrt(d),
			// half giant steps, half hoisted baby steps.
			n2 := nextPow2(max(layouts[n.out].span(), 2))
			for _, t := range n.terms {
				n2 = max(n2, nextPow2(layouts[t.in].span()))
			}
			var keys, plain float64
			for _, t := range n.terms {
				d := countDiagonals(t, layouts[t.in], layouts[n.out], n2)
				plain += float64(d)
				if d > 1 {
					r := 2*math.Ceil(math.Sqrt(float64(d))) - 1
					keys += costDecompose + r/2*(costGiant+costBaby)
				}
			}
			pc.costs = append(pc.costs, func(l int) float64 {
				return keys*pc.ks(l) + (plain*costPlainMult+placeTensor/4)*pc.moduli(l)
			})
		case kindSquare, kindMul:
			pc.costs = append(pc.costs, func(l int) float64 { return pc.ks(l) + placeTensor*pc.moduli(l) })
		case kindPoly:
			mults, depth, clean := float64(polyMults(n.degree())), n.depth(), n.signStage != ""
			pc.costs = append(pc.costs, func(l int) float64 {
				mid := max(l-depth/2, 0)
				c := mults * (pc.ks(mid) + placeTensor*pc.moduli(mid))
				if clean {
					c += pc.ks(l - depth)
				}
				return c
			})
		default:
			pc.costs = append(pc.costs, func(int) float64 { return 0 })
		}
	}
	return pc
}

// bootstrapCost prices one bootstrap with the same table, phase by phase
// at the bootstrapping parameters' levels and special primes: the
// encapsulation key switch and the trace at the top, one key switch per
// rotation key of CoeffsToSlots and SlotsToCoeffs (Lattigo's BSGS uses each
// about once per matrix), and the multiplications of EvalMod.
func bootstrapCost(pc *placeCost, bp *bootParams) float64 {
	btp := bp.btp
	pb := btp.BootstrappingParameters
	kp := pb.PCount()
	top := pb.MaxLevel()
	c2s := btp.CoeffsToSlotsParameters
	s2c := btp.SlotsToCoeffsParameters
	mod := btp.Mod1ParametersLiteral
	cost := pc.keySwitch(top, kp)                                    // sparse to dense
	cost += float64(pb.LogN()-1-bp.logSlots) * pc.keySwitch(top, kp) // trace
	cost += float64(len(c2s.GaloisElements(pb))) * pc.keySwitch(c2s.LevelQ-c2s.Depth(true)/2, kp)
	cost += pc.keySwitch(mod.LevelQ, kp) // conjugation
	mults := polyMults(mod.Mod1Degree) + mod.DoubleAngle + polyMults(mod.Mod1InvDegree)
	cost += float64(mults) * (pc.keySwitch(mod.LevelQ-mod.Depth()/2, kp) + placeTensor)
	cost += float64(len(s2c.GaloisElements(pb))) * pc.keySwitch(s2c.LevelQ-s2c.Depth(true)/2, kp)
	return cost
}

// placedBoot is one bootstrap the placement chose: value is refreshed
// before node before (its first reader that needs the refreshed copy),
// taken at level.
type placedBoot struct {
	value, before, level int
}

// placement is the placement's result, in the circuit's node indices.
type placement struct {
	nodeLevel  []int // per node: the level its inputs enter at
	boots      []placedBoot
	inputLevel int
	cost       float64
	exact      bool
}

// placeState is one state of the programme.
type placeState struct {
	avail []int8 // per live value (placer.live[i] order)
	cost  float64
	trace *placeTrace
}

// placeTrace records a decision, for the reconstruction.
type placeTrace struct {
	prev  *placeTrace
	node  int
	level int
	boots []placedBoot
	input int // for the first record: the input's level
}

// placeBootstraps solves the placement on c with L residual levels.
// minIn(v) is the lowest level value v may be bootstrapped from.
func placeBootstraps(c *circuit, top int, minIn func(v int) int, pc *placeCost) (*placement, error) {
	last := make([]int, len(c.values))
	for i := range last {
		last[i] = -1
	}
	for i, n := range c.nodes {
		for _, v := range n.in {
			last[v] = i
		}
	}
	last[c.output] = len(c.nodes)
	for _, n := range c.nodes {
		if d := n.depth(); d > top {
			return nil, fmt.Errorf("node %q (%s) needs %d levels at once and a bootstrap returns %d", n.name, n.kind, d, top)
		}
	}
	// live[i]: the values live after node i (−1: before the first node).
	liveAfter := func(i int) []int {
		var out []int
		if last[c.input] > i {
			out = append(out, c.input)
		}
		for j := 0; j <= i && j < len(c.nodes); j++ {
			if v := c.nodes[j].out; last[v] > i {
				out = append(out, v)
			}
		}
		sort.Ints(out)
		return out
	}
	live := liveAfter(-1)
	// The device encrypts the input at any level from 1 (a manifest's
	// levels are at least 1) to the top.
	states := map[string]*placeState{}
	for a := min(1, top); a <= top; a++ {
		s := &placeState{avail: []int8{int8(a)}, trace: &placeTrace{node: -1, input: a}}
		if len(live) == 0 {
			s.avail = nil
		}
		states[stateKey(s.avail)] = s
	}
	exact := true
	for i, n := range c.nodes {
		next := liveAfter(i)
		pos := map[int]int{}
		for k, v := range live {
			pos[v] = k
		}
		var ins []int
		seen := map[int]bool{}
		for _, v := range n.in {
			if !seen[v] {
				seen[v] = true
				ins = append(ins, v)
			}
		}
		d := n.depth()
		nextStates := map[string]*placeState{}
		keys := sortedKeys(states)
		for _, key := range keys {
			s := states[key]
			for mask := 0; mask < 1<<len(ins); mask++ {
				avail := append([]int8(nil), s.avail...)
				var boots []placedBoot
				ok := true
				for b, v := range ins {
					if mask&(1<<b) == 0 {
						continue
					}
					a := int(avail[pos[v]])
					if a >= top || a < minIn(v) {
						ok = false
						break
					}
					boots = append(boots, placedBoot{value: v, before: i, level: a})
					avail[pos[v]] = int8(top)
				}
				if !ok {
					continue
				}
				m := top
				for _, v := range ins {
					m = min(m, int(avail[pos[v]]))
				}
				lo := d
				if n.out == c.output {
					m = min(m, d) // the result leaves at level 0
				}
				for l := lo; l <= m; l++ {
					cost := s.cost + pc.costs[i](l) + float64(len(boots))*pc.boot
					na := make([]int8, len(next))
					for k, v := range next {
						if v == n.out {
							na[k] = int8(l - d)
						} else {
							na[k] = avail[pos[v]]
						}
					}
					nk := stateKey(na)
					if old, ok := nextStates[nk]; ok && old.cost <= cost {
						continue
					}
					nextStates[nk] = &placeState{avail: na, cost: cost, trace: &placeTrace{prev: s.trace, node: i, level: l, boots: boots}}
				}
			}
		}
		if len(nextStates) == 0 {
			return nil, fmt.Errorf("no placement lets node %q (%s, depth %d) run", n.name, n.kind, d)
		}
		if len(nextStates) > maxPlaceStates {
			exact = false
			nk := sortedKeys(nextStates)
			sort.SliceStable(nk, func(a, b int) bool { return nextStates[nk[a]].cost < nextStates[nk[b]].cost })
			for _, k := range nk[maxPlaceStates:] {
				delete(nextStates, k)
			}
		}
		states, live = nextStates, next
	}
	var best *placeState
	for _, key := range sortedKeys(states) {
		if s := states[key]; best == nil || s.cost < best.cost {
			best = s
		}
	}
	pl := &placement{nodeLevel: make([]int, len(c.nodes)), cost: best.cost, exact: exact}
	for t := best.trace; t != nil; t = t.prev {
		if t.node < 0 {
			pl.inputLevel = t.input
			continue
		}
		pl.nodeLevel[t.node] = t.level
		pl.boots = append(pl.boots, t.boots...)
	}
	sort.SliceStable(pl.boots, func(a, b int) bool { return pl.boots[a].before < pl.boots[b].before })
	return pl, nil
}

func stateKey(a []int8) string {
	b := make([]byte, len(a))
	for i, x := range a {
		b[i] = byte(x)
	}
	return string(b)
}

func sortedKeys(m map[string]*placeState) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// applyPlacement inserts the placed bootstraps into c (a bootstrap node
// before the first node that reads the refreshed copy; every later reader
// of the value reads the copy) and returns the level plan of the new node
// list, and for each bootstrap node its index.
func applyPlacement(c *circuit, pl *placement, top int, layouts []*layout) (levelPlan, []*layout) {
	bootsBefore := map[int][]placedBoot{}
	for _, b := range pl.boots {
		bootsBefore[b.before] = append(bootsBefore[b.before], b)
	}
	copyOf := map[int]int{}
	var nodes []*cnode
	lp := levelPlan{inputLevel: pl.inputLevel}
	for i, n := range c.nodes {
		for _, b := range bootsBefore[i] {
			src := b.value
			out := c.newValue(c.values[src].shape)
			layouts = append(layouts, layouts[src])
			name := "input"
			if p := c.producerNode(src); p != nil {
				name = p.name
			}
			nodes = append(nodes, &cnode{kind: kindBootstrap, name: name, in: []int{src}, out: out})
			lp.nodeLevel = append(lp.nodeLevel, b.level)
			copyOf[src] = out
		}
		for k, v := range n.in {
			if cp, ok := copyOf[v]; ok {
				n.in[k] = cp
			}
		}
		for k := range n.terms {
			if cp, ok := copyOf[n.terms[k].in]; ok {
				n.terms[k].in = cp
			}
		}
		nodes = append(nodes, n)
		lp.nodeLevel = append(lp.nodeLevel, pl.nodeLevel[i])
	}
	c.nodes = nodes
	lp.valueLevel = make([]int, len(c.values))
	lp.valueLevel[c.input] = pl.inputLevel
	for i, n := range c.nodes {
		if n.kind == kindBootstrap {
			lp.valueLevel[n.out] = top
		} else {
			lp.valueLevel[n.out] = lp.nodeLevel[i] - n.depth()
		}
	}
	return lp, layouts
}

// BootstrapInfo says where the compiler placed one bootstrap and why
// (Manifest.Bootstraps).
type BootstrapInfo struct {
	Step   int    `json:"step"`   // index in Manifest.Steps
	After  string `json:"after"`  // the node whose output is refreshed ("input": the input)
	Before string `json:"before"` // the first node that reads the refreshed copy
	Level  int    `json:"level"`  // level the value is taken at
	// OutputLevel is the level the bootstrap returns (the residual top).
	OutputLevel int `json:"output_level"`
	// Needs is how many levels the nodes after it consume before the next
	// refresh (or the result); Reason says it in words.
	Needs  int    `json:"needs"`
	Reason string `json:"reason"`
}

// bootstrapReport explains each bootstrap step of the compiled circuit.
func (c *compiled) bootstrapReport() []BootstrapInfo {
	readers := map[int][]int{}
	for i, st := range c.steps {
		for _, v := range st.in {
			readers[v] = append(readers[v], i)
		}
	}
	// lowest is the lowest level reached from step i's output before a
	// bootstrap or the result.
	memo := map[int]int{}
	var lowest func(i int) int
	lowest = func(i int) int {
		if l, ok := memo[i]; ok {
			return l
		}
		st := c.steps[i]
		l := st.outLevel
		for _, r := range readers[st.out] {
			if c.steps[r].kind == kindBootstrap {
				l = min(l, c.steps[r].level)
				continue
			}
			l = min(l, lowest(r))
		}
		memo[i] = l
		return l
	}
	var out []BootstrapInfo
	for i, st := range c.steps {
		if st.kind != kindBootstrap {
			continue
		}
		first := readers[st.out][0]
		next := c.steps[first]
		need := st.outLevel - lowest(i)
		info := BootstrapInfo{Step: i, After: st.name, Before: next.name, Level: st.level, OutputLevel: st.outLevel, Needs: need}
		depth := next.level - next.outLevel
		what := "the input"
		if st.name != "input" {
			what = fmt.Sprintf("the output of %q", st.name)
		}
		if st.level < depth {
			info.Reason = fmt.Sprintf("%s has %d level(s) left; the next node %q (%s) needs %d", what, st.level, next.name, next.kind, depth)
		} else {
			info.Reason = fmt.Sprintf("%s has %d level(s) left; the nodes from %q on need %d before the next refresh or the result", what, st.level, next.name, need)
		}
		out = append(out, info)
	}
	return out
}

// BootstrapReport lists, one per line, where the compiler placed each
// bootstrap and why; empty for a model that does not bootstrap.
func (m *Model) BootstrapReport() string { return placementReport(m.manifest.Bootstraps) }

// placementReport is a multi-line summary for errors and logs.
func placementReport(infos []BootstrapInfo) string {
	var b strings.Builder
	for _, bi := range infos {
		fmt.Fprintf(&b, "\n  bootstrap after %q at level %d -> %d: %s", bi.After, bi.Level, bi.OutputLevel, bi.Reason)
	}
	return b.String()
}
