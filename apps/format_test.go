package apps_test

import (
	"strconv"
	"testing"

	"github.com/pyvnode/pyvnode/apps"
)

func TestParseMoney(t *testing.T) {
	good := map[string]uint64{
		"12.5":              1250,
		"12.05":             1205,
		"12.50":             1250,
		"12":                1200,
		"0.01":              1,
		"0.1":               10,
		"1":                 100,
		"125.50":            12550,
		"007.5":             750,
		"90071992547409.91": apps.MaxAmount,
		"90071992547409":    apps.MaxAmount - 91,
	}
	for s, want := range good {
		got, err := apps.ParseMoney(s)
		if err != nil || got != want {
			t.Errorf("ParseMoney(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	bad := []string{
		"0", "0.00", "0.0", "1.234", "-1", "-1.5", "+1", "abc", "", ".", ".5", "1.", "1..5", "1.2.3",
		"1,50", " 1", "1 ", "1e3", "0x10", "1_000", "1.-5", "1.+5", "١", "90071992547409.92", "90071992547410",
		"18446744073709551616", "99999999999999999999.99",
	}
	for _, s := range bad {
		if got, err := apps.ParseMoney(s); err == nil {
			t.Errorf("ParseMoney(%q) = %d, want an error", s, got)
		}
	}
}

func TestFormatMoney(t *testing.T) {
	cases := []struct {
		minor uint64
		cur   string
		want  string
	}{
		{12345, "EUR", "123.45 EUR"},
		{12550, "EUR", "125.50 EUR"},
		{5, "EUR", "0.05 EUR"},
		{0, "USD", "0.00 USD"},
		{100, "JPY", "1.00 JPY"},
		{apps.MaxAmount, "EUR", "90071992547409.91 EUR"},
	}
	for _, c := range cases {
		if got := apps.FormatMoney(c.minor, c.cur); got != c.want {
			t.Errorf("FormatMoney(%d, %s) = %q, want %q", c.minor, c.cur, got, c.want)
		}
	}
	// ParseMoney reads what FormatMoney writes.
	for _, m := range []uint64{1, 9, 10, 99, 100, 101, 12345, 1 << 40, apps.MaxAmount} {
		s := apps.FormatMoney(m, "X")
		got, err := apps.ParseMoney(s[:len(s)-2])
		if err != nil || got != m {
			t.Errorf("ParseMoney(FormatMoney(%d)) = %d, %v", m, got, err)
		}
	}
	if s := strconv.Itoa(int(apps.MaxAmount)); s != "9007199254740991" {
		t.Errorf("MaxAmount = %s", s)
	}
}
