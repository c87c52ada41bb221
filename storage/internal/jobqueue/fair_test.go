package jobqueue

import "testing"

func TestPriority(t *testing.T) {
	t.Parallel()
	for backlog, want := range map[int64]int{
		-1: 1, 0: 1, FairShareBacklog - 1: 1,
		FairShareBacklog: 2, backlogBand2 - 1: 2,
		backlogBand2: 3, backlogBand3 - 1: 3,
		backlogBand3: 4, 16: 4, 64: 4, 1 << 40: 4,
	} {
		if got := Priority(backlog); got != want {
			t.Errorf("Priority(%d) = %d, want %d", backlog, got, want)
		}
	}
}
