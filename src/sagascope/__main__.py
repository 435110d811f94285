from sagascope.cli import main

raise SystemExit(main())
