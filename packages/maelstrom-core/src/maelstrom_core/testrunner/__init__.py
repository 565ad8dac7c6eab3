"""The test-runner framework every front end shares.

A front end implements :class:`Frontend` (see ``_frontend.py``) and calls :func:`run_app`; the
rest is here: filters, spec-file directives, the test DB, the UIs, reports and watch mode.
"""

from ._app import ENQUEUE_STATUS as ENQUEUE_STATUS
from ._app import FrontendFactory as FrontendFactory
from ._app import run_app as run_app
from ._directives import Directive as Directive
from ._directives import InitResult as InitResult
from ._directives import SpecFile as SpecFile
from ._directives import TestMetadata as TestMetadata
from ._directives import init_spec_file as init_spec_file
from ._filter import ARTIFACT_KINDS as ARTIFACT_KINDS
from ._filter import CARGO as CARGO
from ._filter import DIALECTS as DIALECTS
from ._filter import GO as GO
from ._filter import PYTEST as PYTEST
from ._filter import And as And
from ._filter import ArtifactKind as ArtifactKind
from ._filter import CaseInfo as CaseInfo
from ._filter import CompoundSelector as CompoundSelector
from ._filter import Dialect as Dialect
from ._filter import Diff as Diff
from ._filter import Expr as Expr
from ._filter import Filter as Filter
from ._filter import Not as Not
from ._filter import Or as Or
from ._filter import SelectorDef as SelectorDef
from ._filter import SimpleSelector as SimpleSelector
from ._filter import compile_filter as compile_filter
from ._filter import format_expr as format_expr
from ._filter import parse_filter as parse_filter
from ._frontend import BuildFailed as BuildFailed
from ._frontend import Frontend as Frontend
from ._frontend import OtherListMode as OtherListMode
from ._frontend import Package as Package
from ._frontend import TestArtifact as TestArtifact
from ._frontend import TestCase as TestCase
from ._frontend import default_case_status as default_case_status
from ._report import CaseResult as CaseResult
from ._report import CaseStatus as CaseStatus
from ._report import RunSummary as RunSummary
from ._report import format_case_line as format_case_line
from ._report import format_summary as format_summary
from ._report import write_junit_xml as write_junit_xml
from ._testdb import DB_FILE_NAME as DB_FILE_NAME
from ._testdb import DB_VERSION as DB_VERSION
from ._testdb import MAX_TIMINGS as MAX_TIMINGS
from ._testdb import PRIORITY_KNOWN_GOOD as PRIORITY_KNOWN_GOOD
from ._testdb import PRIORITY_NEW_OR_FAILED as PRIORITY_NEW_OR_FAILED
from ._testdb import CaseRecord as CaseRecord
from ._testdb import Outcome as Outcome
from ._testdb import TestDb as TestDb
from ._testdb import TestDbStore as TestDbStore
from ._testdb import TomlValue as TomlValue
from ._ui import UI_NAMES as UI_NAMES
from ._ui import FancyUi as FancyUi
from ._ui import QuietUi as QuietUi
from ._ui import SimpleUi as SimpleUi
from ._ui import Ui as Ui
from ._ui import UiName as UiName
from ._ui import choose_ui as choose_ui
from ._ui import make_ui as make_ui
from ._watch import ChangeWatcher as ChangeWatcher
from ._watch import watch_excludes as watch_excludes
