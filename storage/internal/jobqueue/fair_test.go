package jobqueue

import "testing"

func TestPriority(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		backlog, largest int64
		want             int
	}{
		// The band of the backlog when no other tenant has a larger one.
		{-1, 0, 1}, {0, 0, 1}, {FairShareBacklog - 1, 0, 1},
		{FairShareBacklog, 0, 2}, {backlogBand2 - 1, 1, 2},
		{backlogBand2, 0, 3}, {backlogBand3 - 1, 3, 3},
		{backlogBand3, 0, 4}, {16, 16, 4}, {1 << 40, 64, 4},
		// At least one band better than a larger backlog.
		{0, 64, 1}, {10, 16, 3}, {15, 16, 3}, {5, 6, 2}, {4, 7, 2},
		{3, 16, 2}, {2, 3, 1}, {1, 1 << 40, 1},
	} {
		if got := Priority(tc.backlog, tc.largest); got != tc.want {
			t.Errorf("Priority(%d, %d) = %d, want %d", tc.backlog, tc.largest, got, tc.want)
		}
	}
}
