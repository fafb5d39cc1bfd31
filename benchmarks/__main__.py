"""``python -m benchmarks`` runs the benchmark suite."""

from .run import main

raise SystemExit(main())
