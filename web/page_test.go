package web

import (
	"math"
	"testing"
)

func TestPlanPage(t *testing.T) {
	cases := []struct {
		name              string
		size, from, count uint64
		hasFrom, desc     bool
		first, n          uint64
		nextIfAll         int64
	}{
		{"asc from start", 10, 0, 4, true, false, 0, 4, 4},
		{"asc to the head", 10, 8, 4, true, false, 8, 2, 10},
		{"asc at the head", 10, 10, 4, true, false, 10, 0, 10},
		{"asc beyond the head", 10, 99, 4, true, false, 10, 0, 10},
		{"asc empty chain", 0, 0, 4, false, false, 0, 0, 0},
		{"desc newest", 10, 0, 4, false, true, 9, 4, 5},
		{"desc from", 10, 5, 4, true, true, 5, 4, 1},
		{"desc to the start", 10, 2, 4, true, true, 2, 3, -1},
		{"desc from beyond", 10, 99, 4, true, true, 9, 4, 5},
		{"desc empty chain", 0, 0, 4, false, true, 0, 0, -1},
		{"desc huge from", 10, math.MaxInt64, 500, true, true, 9, 10, -1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			first, n := planPage(c.size, c.from, c.hasFrom, c.count, c.desc)
			if first != c.first || n != c.n {
				t.Fatalf("planPage = %d, %d; want %d, %d", first, n, c.first, c.n)
			}
			if next := nextOf(first, n, c.desc); next != c.nextIfAll {
				t.Fatalf("nextOf = %d, want %d", next, c.nextIfAll)
			}
		})
	}
}
