package torchfile

import (
	"errors"
	"fmt"
	"io"
)

// stream reads a pickle sequentially from an io.ReaderAt, between pos and
// end, through a small window so that big files are never loaded whole.
type stream struct {
	r        io.ReaderAt
	pos, end int64
	buf      []byte
	bufAt    int64 // offset of buf[0]
}

const windowSize = 64 << 10

func newStream(r io.ReaderAt, pos, end int64) *stream {
	return &stream{r: r, pos: pos, end: end}
}

var errEOF = errors.New("unexpected end of data")

func (s *stream) left() int64 { return s.end - s.pos }

// fill makes buf cover s.pos, reading up to windowSize bytes.
func (s *stream) fill() error {
	if s.pos >= s.end {
		return errEOF
	}
	n := min(int64(windowSize), s.end-s.pos)
	if cap(s.buf) < int(n) {
		s.buf = make([]byte, windowSize)
	}
	s.buf = s.buf[:n]
	got, err := s.r.ReadAt(s.buf, s.pos)
	if got < int(n) {
		s.buf = s.buf[:got]
		s.bufAt = s.pos
		if got == 0 {
			if err == nil || err == io.EOF {
				return errEOF
			}
			return err
		}
		// A short read: keep what came; the caller asks again when it runs out.
		return nil
	}
	s.bufAt = s.pos
	return nil
}

func (s *stream) inBuf() bool {
	return s.pos >= s.bufAt && s.pos < s.bufAt+int64(len(s.buf))
}

func (s *stream) readByte() (byte, error) {
	if !s.inBuf() {
		if err := s.fill(); err != nil {
			return 0, err
		}
	}
	b := s.buf[s.pos-s.bufAt]
	s.pos++
	return b, nil
}

// read returns the next n bytes in a new slice. n is checked against what
// is left before anything is allocated.
func (s *stream) read(n int64) ([]byte, error) {
	if n < 0 || n > s.left() {
		return nil, fmt.Errorf("length %d exceeds the %d bytes left", n, s.left())
	}
	out := make([]byte, n)
	done := 0
	for done < len(out) {
		if !s.inBuf() {
			if n-int64(done) > windowSize {
				// Large reads bypass the window.
				got, err := s.r.ReadAt(out[done:], s.pos)
				done += got
				s.pos += int64(got)
				if done < len(out) {
					if err == nil || err == io.EOF {
						err = errEOF
					}
					return nil, err
				}
				break
			}
			if err := s.fill(); err != nil {
				return nil, err
			}
		}
		c := copy(out[done:], s.buf[s.pos-s.bufAt:])
		done += c
		s.pos += int64(c)
	}
	return out, nil
}

// skip moves past n bytes without reading them (for lazy byte strings).
func (s *stream) skip(n int64) error {
	if n < 0 || n > s.left() {
		return fmt.Errorf("length %d exceeds the %d bytes left", n, s.left())
	}
	s.pos += n
	return nil
}

// readLine returns the bytes up to a '\n' (not included), for the text
// opcodes of protocol 0. Lines longer than max are an error.
func (s *stream) readLine(max int) ([]byte, error) {
	var line []byte
	for {
		b, err := s.readByte()
		if err != nil {
			return nil, err
		}
		if b == '\n' {
			return line, nil
		}
		if len(line) >= max {
			return nil, fmt.Errorf("text argument longer than %d bytes", max)
		}
		line = append(line, b)
	}
}
