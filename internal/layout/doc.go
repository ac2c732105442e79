// Package layout holds the test that keeps production code inside the import
// rules of DESIGN.md's layout table (and docs/ARCHITECTURE.md, which records
// the packages the table does not list). It has no code of its own.
package layout
