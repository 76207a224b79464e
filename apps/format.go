package apps

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

func fmtNanos(ns int64) string { return time.Unix(0, ns).UTC().Format(time.RFC3339Nano) }

func fmtSeconds(s int64) string { return time.Unix(s, 0).UTC().Format(time.RFC3339) }

// FormatMoney shows minor units with two decimals and the currency:
// 12345 EUR is "123.45 EUR". (Every currency is shown with two decimals;
// the amount on the chain is the integer.)
func FormatMoney(minor uint64, currency string) string {
	return fmt.Sprintf("%d.%02d %s", minor/100, minor%100, currency)
}

// WriteTally prints a tally as text. The output depends on the tally
// alone, so two nodes with the same records print the same bytes.
func WriteTally(w io.Writer, t *Tally) {
	fmt.Fprintf(w, "ballot      %s\n", t.Ballot)
	fmt.Fprintf(w, "question    %s\n", t.Question)
	fmt.Fprintf(w, "open        %s to %s\n", fmtSeconds(t.Opens), fmtSeconds(t.Closes))
	fmt.Fprintf(w, "defined by  %s\n", t.DefinedBy)
	width := 6
	for _, c := range t.Counts {
		width = max(width, utf8.RuneCountInString(c.Choice)) // fmt pads by runes
	}
	fmt.Fprintf(w, "\n%-*s  %8s  %6s\n", width, "choice", "votes", "share")
	for _, c := range t.Counts {
		share := "-"
		if t.Voted > 0 {
			share = strconv.FormatFloat(100*float64(c.Votes)/float64(t.Voted), 'f', 1, 64) + "%"
		}
		fmt.Fprintf(w, "%-*s  %8d  %6s\n", width, c.Choice, c.Votes, share)
	}
	fmt.Fprintf(w, "\nvoters      %d registered, %d withdrawn, %d effective, %d voted\n", t.Registered, t.Withdrawn, t.Effective, t.Voted)
	fmt.Fprintf(w, "records     %d (casts replaced by a later cast: %d)\n", t.Records, t.Replaced)
	fmt.Fprintf(w, "digest      %s\n", t.Digest)
	writeViolations(w, t.Violations)
}

func writeViolations(w io.Writer, vs []Violation) {
	fmt.Fprintf(w, "violations  %d\n", len(vs))
	for _, v := range vs {
		fmt.Fprintf(w, "  %s  %s  %s  %s: %s", v.ID, fmtNanos(v.Created), v.Kind, v.Rule, v.Detail)
		if v.Ref != nil {
			fmt.Fprintf(w, " (see %s)", v.Ref)
		}
		fmt.Fprintln(w)
	}
}

// WriteFundReport prints a fund's report as text.
func WriteFundReport(w io.Writer, r *FundReport) {
	fmt.Fprintf(w, "fund        %s  %s\n", r.Fund, r.Name)
	fmt.Fprintf(w, "defined by  %s\n", r.DefinedBy)
	fmt.Fprintf(w, "received    %s  (%d donations)\n", FormatMoney(r.Received, r.Currency), r.Donations)
	fmt.Fprintf(w, "disbursed   %s  (%d disbursements)\n", FormatMoney(r.Disbursed, r.Currency), r.Disbursements)
	fmt.Fprintf(w, "balance     %s\n", FormatMoney(r.Balance, r.Currency))
	writeBuckets(w, "by source", r.BySource, r.Currency)
	writeBuckets(w, "by target", r.ByTarget, r.Currency)
	fmt.Fprintf(w, "records     %d\ndigest      %s\n", r.Records, r.Digest)
	writeViolations(w, r.Violations)
}

func writeBuckets(w io.Writer, title string, bs []Bucket, currency string) {
	fmt.Fprintf(w, "%s\n", title)
	if len(bs) == 0 {
		fmt.Fprintln(w, "  (none)")
	}
	for _, b := range bs {
		name := b.Name
		if name == "" {
			name = "(not given)"
		}
		fmt.Fprintf(w, "  %-30s %20s  %d\n", name, FormatMoney(b.Amount, currency), b.Count)
	}
}

// WriteResourceReport prints the resource report as text.
func WriteResourceReport(w io.Writer, r *ResourceReport) {
	fmt.Fprintf(w, "%-20s %-12s %14s %14s %14s %14s %14s  %s\n", "account", "unit", "balance", "allocated", "used", "sent", "received", "overdraft")
	for _, a := range r.Accounts {
		od := "no"
		if a.Overdraft {
			od = "yes"
		}
		fmt.Fprintf(w, "%-20s %-12s %14d %14d %14d %14d %14d  %s\n", a.Account, a.Unit, a.Balance, a.Allocated, a.Used, a.Sent, a.Received, od)
	}
	fmt.Fprintf(w, "\nusage per %s\n", r.Period)
	if len(r.Usage) == 0 {
		fmt.Fprintln(w, "  (none)")
	}
	for _, u := range r.Usage {
		fmt.Fprintf(w, "  %-20s %-10s %14d  (%d records)\n", u.Account, u.Period, u.Amount, u.Count)
	}
	fmt.Fprintf(w, "\nrecords     %d\ndigest      %s\n", r.Records, r.Digest)
	writeViolations(w, r.Violations)
}

// ParseMoney reads "123.45" (or "123") as minor units: 12345.
func ParseMoney(s string) (uint64, error) {
	whole, frac, dot := strings.Cut(s, ".")
	if whole == "" || dot && (len(frac) == 0 || len(frac) > 2) {
		return 0, fmt.Errorf("amount %q: write it as 123 or 123.45", s)
	}
	for len(frac) < 2 {
		frac += "0"
	}
	w, err := strconv.ParseUint(whole, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("amount %q: write it as 123 or 123.45", s)
	}
	f, err := strconv.ParseUint(frac, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("amount %q: write it as 123 or 123.45", s)
	}
	if w > MaxAmount/100 {
		return 0, fmt.Errorf("amount %q is too large", s)
	}
	a := w*100 + f
	if a == 0 || a > MaxAmount {
		return 0, fmt.Errorf("amount %q must be above zero and at most %s", s, FormatMoney(MaxAmount, "")[:len(FormatMoney(MaxAmount, ""))-1])
	}
	return a, nil
}
