package ledger

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"sync"
)

// ImportOptions tune Import.
type ImportOptions struct {
	Workers  int               // signature checkers; default GOMAXPROCS
	Batch    int               // records per AppendBatch; default 2048
	Progress func(read uint64) // called after each batch
	// Check, when set, runs on each record after the ledger's checks (the
	// applications' payload schemas, as peers apply them to replicated
	// records), so an import takes nothing peers would refuse.
	Check func(*SignedRecord) error
}

// ImportReport counts what an import did.
type ImportReport struct {
	Read     uint64 // record lines read
	Appended uint64 // new records
	Existing uint64 // records the chain already held
}

// Import reads an export and appends every record the chain lacks, checking
// each fully (encoding, id, proof of work, originator, signature) first; the
// export's own links and tree are not trusted, this chain computes its own.
// The export must be of this store's network. On a bad record nothing of its
// batch is appended and the error names its line.
func Import(ctx context.Context, s *Store, r io.Reader, opts ImportOptions) (*ImportReport, error) {
	if opts.Workers <= 0 {
		opts.Workers = runtime.GOMAXPROCS(0)
	}
	if opts.Batch <= 0 {
		opts.Batch = 2048
	}
	er, err := NewExportReader(r)
	if err != nil {
		return nil, err
	}
	if er.Header.GenesisHash != s.opts.Genesis.Hash() {
		return nil, fmt.Errorf("%w: export is of network %q (genesis %s)", ErrWrongNetwork, er.Header.Network, er.Header.GenesisHash)
	}
	v := &Validator{Genesis: s.opts.Genesis, Extra: opts.Check}
	rep := &ImportReport{}
	for {
		lines, recs, done, err := readImportBatch(er, opts.Batch)
		if err != nil {
			return rep, err
		}
		if len(recs) > 0 {
			if err := checkParallel(v, recs, lines, opts.Workers); err != nil {
				return rep, err
			}
			items := make([]Pending, len(recs))
			for i, x := range recs {
				items[i] = Pending{Record: x.rec, Replication: x.repl, Source: "import"}
			}
			res, err := s.AppendBatch(ctx, items)
			if err != nil {
				return rep, err
			}
			rep.Read += uint64(len(recs))
			for i, r := range res {
				switch {
				case r.Err == nil:
					rep.Appended++
				case errors.Is(r.Err, ErrExists):
					rep.Existing++
				default:
					return rep, fmt.Errorf("export line %d: %w", lines[i], r.Err)
				}
			}
			if opts.Progress != nil {
				opts.Progress(rep.Read)
			}
		}
		if done {
			return rep, nil
		}
	}
}

type importItem struct {
	rec  *SignedRecord
	repl uint8
}

func readImportBatch(er *ExportReader, n int) (lines []int, recs []importItem, done bool, err error) {
	for len(recs) < n {
		x, err := er.Next()
		if errors.Is(err, io.EOF) {
			return lines, recs, true, nil
		}
		if err != nil {
			return nil, nil, false, err
		}
		rec, err := x.SignedRecord()
		if err != nil {
			return nil, nil, false, fmt.Errorf("export line %d: %w", er.Line(), err)
		}
		lines = append(lines, er.Line())
		recs = append(recs, importItem{rec: rec, repl: x.Replication})
	}
	return lines, recs, false, nil
}

// checkParallel runs Validator.Check over recs on several goroutines and
// returns the error of the earliest bad line.
func checkParallel(v *Validator, recs []importItem, lines []int, workers int) error {
	errs := make([]error, len(recs))
	var wg sync.WaitGroup
	chunk := (len(recs) + workers - 1) / workers
	for lo := 0; lo < len(recs); lo += chunk {
		hi := min(lo+chunk, len(recs))
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := lo; i < hi; i++ {
				errs[i] = v.Check(recs[i].rec)
			}
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return fmt.Errorf("export line %d: %w", lines[i], err)
		}
	}
	return nil
}
