package recon

import "fmt"

// Reconciler runs one side of a reconciliation over a set. Defaults:
// Branch 16, IDListMax 16.
type Reconciler struct {
	Set *Set
	// Branch is how many sub-ranges a differing range is split into.
	Branch int
	// IDListMax: a differing range with at most this many items is sent
	// as its ids instead of being split.
	IDListMax int
	// FrameLimit bounds a reply's bytes (default 128 KiB). When a reply
	// would grow past it, the rest of the message's span is answered with
	// one fingerprint, to be taken up in the next round.
	FrameLimit int
}

func (r *Reconciler) params() (int, int) {
	b, t := r.Branch, r.IDListMax
	if b < 2 {
		b = 16
	}
	if t < 1 {
		t = 16
	}
	if t < b-1 {
		// Fewer ids than parts would leave empty parts, whose bounds
		// cannot be placed: split no finer than the ids allow.
		t = b - 1
	}
	return b, t
}

// Initiate is the first message of the initiating side.
func (r *Reconciler) Initiate() []byte {
	var out []Range
	r.describe(&out, 0, r.Set.Len(), Bound{Infinite: true})
	return Encode(out)
}

// describe appends ranges for own items [lo, hi) ending at upper: their
// ids when few, else Branch fingerprints.
func (r *Reconciler) describe(out *[]Range, lo, hi int, upper Bound) {
	branch, idmax := r.params()
	n := hi - lo
	if n <= idmax {
		ids := make([][32]byte, 0, n)
		for i := lo; i < hi; i++ {
			ids = append(ids, r.Set.At(i).ID)
		}
		*out = append(*out, Range{Upper: upper, Mode: ModeIDList, IDs: ids})
		return
	}
	start := lo
	for k := 1; k <= branch; k++ {
		end := lo + n*k/branch
		ub := upper
		if k < branch {
			ub = boundBetween(r.Set.At(end-1), r.Set.At(end))
		}
		*out = append(*out, Range{Upper: ub, Mode: ModeFingerprint, FP: r.Set.Fingerprint(start, end)})
		start = end
	}
}

// Step is the outcome of processing one message.
type Step struct {
	// Reply is the next message to send; nil when this side has nothing
	// more to say (reconciliation is done once both sides say nothing).
	Reply []byte
	// Have: ids this side holds that the peer lacks (send them).
	Have [][32]byte
	// Need: ids the peer holds that this side lacks (ask for them).
	Need [][32]byte
}

// Reconcile processes the peer's message.
func (r *Reconciler) Reconcile(msg []byte) (*Step, error) {
	ranges, err := Decode(msg)
	if err != nil {
		return nil, err
	}
	st := &Step{}
	var out []Range
	limit := r.FrameLimit
	if limit <= 0 {
		limit = 128 << 10
	}
	size := 1
	lo := 0
	for _, in := range ranges {
		if size > limit {
			// Enough for one reply: fingerprint the rest of the span.
			last := ranges[len(ranges)-1].Upper
			hi := r.Set.Find(last)
			out = append(out, Range{Upper: last, Mode: ModeFingerprint, FP: r.Set.Fingerprint(lo, hi)})
			break
		}
		before := len(out)
		hi := r.Set.Find(in.Upper)
		if hi < lo {
			return nil, fmt.Errorf("%w: bounds out of order", ErrMalformed)
		}
		switch in.Mode {
		case ModeSkip:
			out = append(out, Range{Upper: in.Upper, Mode: ModeSkip})
		case ModeFingerprint:
			if r.Set.Fingerprint(lo, hi) == in.FP {
				out = append(out, Range{Upper: in.Upper, Mode: ModeSkip})
			} else {
				r.describe(&out, lo, hi, in.Upper)
			}
		case ModeIDList:
			theirs := make(map[[32]byte]bool, len(in.IDs))
			for _, id := range in.IDs {
				theirs[id] = true
			}
			for i := lo; i < hi; i++ {
				id := r.Set.At(i).ID
				if theirs[id] {
					delete(theirs, id)
				} else {
					st.Have = append(st.Have, id)
				}
			}
			for _, id := range in.IDs {
				if theirs[id] {
					st.Need = append(st.Need, id)
					delete(theirs, id)
				}
			}
			out = append(out, Range{Upper: in.Upper, Mode: ModeSkip})
		}
		for _, o := range out[before:] {
			size += rangeSize(o)
		}
		lo = hi
	}
	out = compact(out)
	if len(out) > 0 {
		st.Reply = Encode(out)
	}
	return st, nil
}

// compact merges neighbouring skips and drops trailing ones.
func compact(rs []Range) []Range {
	var out []Range
	for _, r := range rs {
		if r.Mode == ModeSkip && len(out) > 0 && out[len(out)-1].Mode == ModeSkip {
			out[len(out)-1].Upper = r.Upper
			continue
		}
		out = append(out, r)
	}
	for len(out) > 0 && out[len(out)-1].Mode == ModeSkip {
		out = out[:len(out)-1]
	}
	return out
}

// rangeSize is an upper estimate of a range's encoded bytes.
func rangeSize(r Range) int {
	n := 10 + 1 + len(r.Upper.Prefix) + 1
	switch r.Mode {
	case ModeFingerprint:
		n += FingerprintSize
	case ModeIDList:
		n += 5 + 32*len(r.IDs)
	}
	return n
}
