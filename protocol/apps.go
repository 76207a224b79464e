package protocol

import (
	"context"
	"errors"

	"github.com/fxamacker/cbor/v2"
	"github.com/pyvnode/pyvnode/apps"
	"github.com/pyvnode/pyvnode/ledger"
	"github.com/pyvnode/pyvnode/protocol/accounts"
)

// submit appends a record for a logged-in user: application kinds go
// through the rules, generic kinds straight to the chain.
func submit(ctx context.Context, se *session, u accounts.Public, kind string, payload cbor.RawMessage) (*ledger.SignedRecord, ledger.Entry, error) {
	if err := ledger.CheckKind(kind); err != nil {
		return nil, ledger.Entry{}, ledgerError(err)
	}
	if !apps.Reserved(kind) {
		rec, e, err := se.srv.cfg.Backend.Put(ctx, kind, payload, u.Name)
		if err != nil {
			return nil, ledger.Entry{}, ledgerError(err)
		}
		return rec, e, nil
	}
	eng := se.srv.cfg.Apps
	if eng == nil {
		return nil, ledger.Entry{}, errorf(ErrUnavailable, "this node does not run the applications")
	}
	if apps.RequiredRole(kind) == apps.RoleAuthority && u.Role != accounts.Authority {
		return nil, ledger.Entry{}, errorf(ErrForbidden, "%s needs the authority role (you are %s)", kind, u.Role)
	}
	rec, e, err := eng.Submit(ctx, kind, payload, u.Name)
	if err != nil {
		return nil, ledger.Entry{}, appError(err)
	}
	return rec, e, nil
}

// appError maps application errors to wire errors.
func appError(err error) error {
	var re *apps.RefusedError
	switch {
	case errors.As(err, &re):
		return &Error{Code: ErrRefused.Code, Message: re.Error(), Check: re.V.Rule}
	case errors.Is(err, apps.ErrInvalid):
		return &Error{Code: ErrInvalidRecord.Code, Message: err.Error(), Check: "payload"}
	case errors.Is(err, apps.ErrNotFound):
		return errorf(ErrNotFound, "%v", err)
	}
	return ledgerError(err)
}

// view computes a view in one of the engine's view slots, waiting for one
// while ctx lasts.
func view[T any](ctx context.Context, eng *apps.Engine, compute func() (T, error)) (T, error) {
	var zero T
	release, err := eng.AcquireView(ctx)
	if err != nil {
		return zero, errorf(ErrBusy, "too many tallies and reports being computed; try again")
	}
	defer release()
	v, err := compute()
	if err != nil {
		return zero, appError(err)
	}
	return v, nil
}

func (se *session) index(ctx context.Context) (*apps.Index, error) {
	eng := se.srv.cfg.Apps
	if eng == nil {
		return nil, errorf(ErrUnavailable, "this node does not run the applications")
	}
	x, err := eng.Index(ctx)
	if err != nil {
		return nil, ledgerError(err)
	}
	return x, nil
}

type receiptArgs struct {
	ID ledger.ID `cbor:"id"`
}

type ballotArgs struct {
	Ballot string `cbor:"ballot"`
}

type fundArgs struct {
	Fund string `cbor:"fund"`
}

type resourceArgs struct {
	Period  string `cbor:"period,omitempty"`
	Account string `cbor:"account,omitempty"`
}

// BallotsResult lists ballots.
type BallotsResult struct {
	Ballots []apps.BallotInfo `cbor:"ballots" json:"ballots"`
}

// FundsResult lists funds.
type FundsResult struct {
	Funds []string `cbor:"funds" json:"funds"`
}

// Receipt makes a receipt for a record this node holds: its height, a
// checkpoint of the head signed now, and the inclusion proof against it.
func Receipt(b Backend, id ledger.ID) (*apps.Receipt, error) {
	st := b.Store()
	h, err := st.Height(id)
	if err != nil {
		return nil, ledgerError(err)
	}
	rec, _, err := st.Get(id)
	if err != nil {
		return nil, ledgerError(err)
	}
	cp, err := signedCheckpoint(b)
	if err != nil {
		return nil, err
	}
	p, err := st.InclusionProof(h, cp.Size)
	if err != nil {
		return nil, ledgerError(err)
	}
	r := &apps.Receipt{Format: apps.ReceiptFormat, Network: b.Genesis().Network, Record: id, Kind: rec.Kind,
		Node: b.Identity().ID(), Height: h, Size: cp.Size, Root: cp.Root, Checkpoint: cp.Checkpoint}
	for _, x := range p {
		r.Proof = append(r.Proof, x)
	}
	if r.Proof == nil {
		r.Proof = []ledger.HexBytes{}
	}
	return r, nil
}

func init() {
	register(&command{name: "receipt", args: "id", help: "a receipt for a record: height, signed checkpoint, inclusion proof",
		run: func(_ context.Context, se *session, raw cbor.RawMessage) (any, error) {
			var a receiptArgs
			if err := decodeArgs(raw, &a); err != nil {
				return nil, err
			}
			return Receipt(se.srv.cfg.Backend, a.ID)
		}})
	register(&command{name: "vote.ballots", help: "the ballots on the chain",
		run: func(ctx context.Context, se *session, _ cbor.RawMessage) (any, error) {
			x, err := se.index(ctx)
			if err != nil {
				return nil, err
			}
			return BallotsResult{Ballots: x.Ballots()}, nil
		}})
	register(&command{name: "vote.tally", args: "ballot", help: "a ballot's tally and violations, computed from the records",
		run: func(ctx context.Context, se *session, raw cbor.RawMessage) (any, error) {
			var a ballotArgs
			if err := decodeArgs(raw, &a); err != nil {
				return nil, err
			}
			x, err := se.index(ctx)
			if err != nil {
				return nil, err
			}
			return view(ctx, se.srv.cfg.Apps, func() (*apps.Tally, error) { return x.Tally(a.Ballot) })
		}})
	register(&command{name: "charity.funds", help: "the funds on the chain",
		run: func(ctx context.Context, se *session, _ cbor.RawMessage) (any, error) {
			x, err := se.index(ctx)
			if err != nil {
				return nil, err
			}
			return FundsResult{Funds: x.Funds()}, nil
		}})
	register(&command{name: "charity.report", args: "fund", help: "a fund's received, disbursed and balance, by source and target",
		run: func(ctx context.Context, se *session, raw cbor.RawMessage) (any, error) {
			var a fundArgs
			if err := decodeArgs(raw, &a); err != nil {
				return nil, err
			}
			x, err := se.index(ctx)
			if err != nil {
				return nil, err
			}
			return view(ctx, se.srv.cfg.Apps, func() (*apps.FundReport, error) { return x.FundReport(a.Fund) })
		}})
	register(&command{name: "resource.report", args: "[period] [account]", help: "balances and usage per period (day, month, year)",
		run: func(ctx context.Context, se *session, raw cbor.RawMessage) (any, error) {
			var a resourceArgs
			if err := decodeArgs(raw, &a); err != nil {
				return nil, err
			}
			if a.Period == "" {
				a.Period = "month"
			}
			if err := apps.CheckPeriod(a.Period); err != nil {
				return nil, errorf(ErrBadRequest, "%v", err)
			}
			x, err := se.index(ctx)
			if err != nil {
				return nil, err
			}
			return view(ctx, se.srv.cfg.Apps, func() (*apps.ResourceReport, error) { return x.ResourceReport(a.Period, a.Account) })
		}})
}
