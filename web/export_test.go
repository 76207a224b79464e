package web

// SetMaxPageBytes lowers the JSON budget of a record page for a test and
// returns the function that restores it.
func SetMaxPageBytes(n int) func() {
	old := maxPageBytes
	maxPageBytes = n
	return func() { maxPageBytes = old }
}
