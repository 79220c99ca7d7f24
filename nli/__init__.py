"""nli: the NLI cutpoint solver and the table format of the NLI Engine.

Public API: :class:`Table`, :func:`load_table`, :func:`save_table`,
:func:`default_table`, :func:`get_function`, :func:`fp16_grid`.
"""

from .defaults import default_table, default_table_names
from .functions import FUNCTIONS, get_function
from .grid import fp16_grid
from .table import Table, TableError, load_table, save_table, table_from_cutpoints

__all__ = [
    "Table",
    "TableError",
    "load_table",
    "save_table",
    "table_from_cutpoints",
    "default_table",
    "default_table_names",
    "FUNCTIONS",
    "get_function",
    "fp16_grid",
]
