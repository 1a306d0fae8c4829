from thv.cli import main

raise SystemExit(main())
