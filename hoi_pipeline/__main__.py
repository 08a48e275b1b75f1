from hoi_pipeline.cli import main

raise SystemExit(main())
