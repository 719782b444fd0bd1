"""rv's writes: one typed, atomic service function per clinical action (DESIGN.md)."""
