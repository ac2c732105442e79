package nodeimage

import (
	"context"
	"debug/elf"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
)

// ErrDynamicallyLinked reports an executable that needs a program
// interpreter or shared libraries. Node images carry only static
// executables, so they run on any Linux host whatever its libc.
var ErrDynamicallyLinked = errors.New("executable is dynamically linked")

// goarchOf maps the architectures node images support to the ELF machine,
// class and byte order their executables carry.
var goarchOf = map[string]struct {
	machine elf.Machine
	class   elf.Class
	order   binary.ByteOrder
}{
	"amd64":   {elf.EM_X86_64, elf.ELFCLASS64, binary.LittleEndian},
	"arm64":   {elf.EM_AARCH64, elf.ELFCLASS64, binary.LittleEndian},
	"riscv64": {elf.EM_RISCV, elf.ELFCLASS64, binary.LittleEndian},
	"ppc64le": {elf.EM_PPC64, elf.ELFCLASS64, binary.LittleEndian},
	"s390x":   {elf.EM_S390, elf.ELFCLASS64, binary.BigEndian},
	"386":     {elf.EM_386, elf.ELFCLASS32, binary.LittleEndian},
	"arm":     {elf.EM_ARM, elf.ELFCLASS32, binary.LittleEndian},
}

// CheckStatic checks that the file at path is a statically linked ELF
// executable (no program interpreter, no needed shared libraries) and returns
// its architecture in GOARCH spelling. The error names the file.
func CheckStatic(ctx context.Context, path string) (arch string, err error) {
	if err := ctx.Err(); err != nil {
		return "", fmt.Errorf("check %s: %w", path, err)
	}
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("check %s: %w", path, err)
	}
	defer f.Close()
	return checkStaticELF(path, f)
}

// checkStaticELF is CheckStatic on an open file; name is used in errors.
func checkStaticELF(name string, r io.ReaderAt) (string, error) {
	f, err := elf.NewFile(r)
	if err != nil {
		return "", fmt.Errorf("%s is not an ELF executable: %v: %w", name, err, ErrInvalid)
	}
	defer f.Close()
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return "", fmt.Errorf("%s is an ELF %s, not an executable: %w", name, f.Type, ErrInvalid)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			interp, _ := io.ReadAll(io.LimitReader(p.Open(), 4096))
			return "", fmt.Errorf("%s needs program interpreter %s: %w", name, strings.TrimRight(string(interp), "\x00"), ErrDynamicallyLinked)
		}
	}
	libs, err := f.ImportedLibraries()
	if err != nil {
		return "", fmt.Errorf("read dynamic section of %s: %v: %w", name, err, ErrInvalid)
	}
	if len(libs) > 0 {
		return "", fmt.Errorf("%s needs shared libraries %s: %w", name, strings.Join(libs, ", "), ErrDynamicallyLinked)
	}
	for arch, m := range goarchOf {
		if f.Machine == m.machine && f.Class == m.class && f.ByteOrder == m.order {
			return arch, nil
		}
	}
	return "", fmt.Errorf("%s targets unsupported machine %s (%s): %w", name, f.Machine, f.Class, ErrInvalid)
}
