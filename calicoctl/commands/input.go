package commands

import (
	"fmt"
	"io"
	"os"
)

// MaxInputBytes caps what one command reads from -f (every file of a
// directory together), from stdin, from get -o go-template-file and from
// ipam release --from-report.
// Calico's calicoctl has no cap, so `calicoctl apply -f /dev/zero` grows
// until the kernel kills it; 64 MiB is some 100,000 resources, far beyond
// any manifest seen in practice, and small enough for any host.
const MaxInputBytes = 64 << 20

// tooLargeError means an input went over MaxInputBytes.
type tooLargeError struct {
	name   string
	shared bool // earlier inputs of the command used part of the budget
}

func (e *tooLargeError) Error() string {
	what := e.name + " is"
	if e.shared {
		what = "the input, with " + e.name + ", is"
	}
	return fmt.Sprintf("%s larger than %d MiB, the most calicoctl reads in one command", what, MaxInputBytes>>20)
}

// inputBudget is what is left of MaxInputBytes for one command.
type inputBudget struct{ left int64 }

func newInputBudget() *inputBudget { return &inputBudget{left: MaxInputBytes} }

// read reads the input name whole ("-" is stdin unless stdin is nil),
// failing as soon as it is known to exceed the budget: at once for a
// regular file, after budget+1 bytes for a pipe or device.
func (b *inputBudget) read(name string, stdin io.Reader) ([]byte, error) {
	r, display := stdin, "stdin"
	if name != "-" || stdin == nil {
		display = name
		f, err := os.Open(name)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if st, err := f.Stat(); err == nil && st.Mode().IsRegular() && st.Size() > b.left {
			return nil, b.tooLarge(display)
		}
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, b.left+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > b.left {
		return nil, b.tooLarge(display)
	}
	b.left -= int64(len(data))
	return data, nil
}

func (b *inputBudget) tooLarge(name string) error {
	return &tooLargeError{name: name, shared: b.left < MaxInputBytes}
}
