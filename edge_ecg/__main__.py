from edge_ecg.cli import main

raise SystemExit(main())
