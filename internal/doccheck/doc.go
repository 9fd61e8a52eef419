// Package doccheck holds no code: its test keeps the commands the README
// and bench/README.md show from rotting. By default it checks that each
// has a recipe that runs it at the smallest sizes its flags allow; with
// -commands it runs every one of them, and every example, and fails
// naming the command that broke:
//
//	go test ./internal/doccheck -commands -timeout 30m
//
// `go run` commands run their program, built once, with the recipe's flags
// appended (the last value of a flag wins), in a scratch directory, so
// results, profiles and charts stay out of the tree. `go test` commands are
// listed (`go test -list`), which checks that the tests and benchmarks they
// name exist and that their flags parse. `scopemesh` commands run with
// --help, which checks their flags.
package doccheck
