//! The table schemas of the reference writers (`src/utils/write_*.py`): column names and the
//! Arrow types `pa.Table.from_pandas` gives them. One definition, used by the dataset readers
//! (which columns a file must have) and by `data convert` (what it writes).

use std::sync::Arc;

use arrow_schema::{DataType, Field};

use super::arrow_file::{list_item, ColKind};

/// The Arrow type of a column as pyarrow infers it from the reference's pandas frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColType {
    /// `bytes` → `binary`.
    Binary,
    /// `str` → `string`.
    Str,
    /// `int` → `int64`.
    Int64,
    /// `list[str]` → `list<string>`.
    StrList,
    /// `list[int]` → `list<int64>`.
    Int64List,
    StrListList,
    Int64ListList,
    /// `list[list[float]]` → `list<list<double>>`.
    F64ListList,
}

impl ColType {
    /// The Arrow type of a column holding values (pyarrow names every list item `item`, nullable).
    pub fn data_type(self) -> DataType {
        let list = |t: DataType| DataType::List(Arc::new(Field::new("item", t, true)));
        match self {
            Self::Binary => DataType::Binary,
            Self::Str => DataType::Utf8,
            Self::Int64 => DataType::Int64,
            Self::StrList => list(DataType::Utf8),
            Self::Int64List => list(DataType::Int64),
            Self::StrListList => list(list(DataType::Utf8)),
            Self::Int64ListList => list(list(DataType::Int64)),
            Self::F64ListList => list(list(DataType::Float64)),
        }
    }

    pub fn is_list(self) -> bool {
        !matches!(self, Self::Binary | Self::Str | Self::Int64)
    }

    /// The type as Arrow names it.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Binary => "binary",
            Self::Str => "string",
            Self::Int64 => "int64",
            Self::StrList => "list<string>",
            Self::Int64List => "list<int64>",
            Self::StrListList => "list<list<string>>",
            Self::Int64ListList => "list<list<int64>>",
            Self::F64ListList => "list<list<double>>",
        }
    }

    /// Whether a column of Arrow type `dt` holds this type; the large (64-bit offset) variants
    /// are accepted too because big tables may use them.
    pub fn matches(self, dt: &DataType) -> bool {
        let item = |t: Self| list_item(dt).is_some_and(|i| t.matches(i));
        match self {
            Self::Binary => matches!(dt, DataType::Binary | DataType::LargeBinary),
            Self::Str => matches!(dt, DataType::Utf8 | DataType::LargeUtf8),
            Self::Int64 => matches!(dt, DataType::Int64),
            Self::StrList => item(Self::Str),
            Self::Int64List => item(Self::Int64),
            Self::StrListList => item(Self::StrList),
            Self::Int64ListList => item(Self::Int64List),
            Self::F64ListList => list_item(dt)
                .and_then(list_item)
                .is_some_and(|t| matches!(t, DataType::Float64)),
        }
    }

    /// What a reader accepts for a column of this type (`may_be_empty`: also `list<null>`).
    pub fn reader_kind(self, may_be_empty: bool) -> ColKind {
        ColKind {
            ty: self,
            // pyarrow types a column of lists of lists that are all empty `list<null>`.
            or_empty: may_be_empty
                && matches!(
                    self,
                    Self::StrListList | Self::Int64ListList | Self::F64ListList
                ),
        }
    }
}

/// One column of a reference table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ColumnDef {
    pub name: &'static str,
    pub ty: ColType,
    /// The dataset readers need it (the others are written for the reference's own use).
    pub read: bool,
    /// Every row may hold an empty list (the VQA test answers), which pyarrow types `list<null>`.
    pub may_be_empty: bool,
}

const fn col(name: &'static str, ty: ColType, read: bool) -> ColumnDef {
    ColumnDef {
        name,
        ty,
        read,
        may_be_empty: false,
    }
}

const fn col_empty(name: &'static str, ty: ColType) -> ColumnDef {
    ColumnDef {
        name,
        ty,
        read: true,
        may_be_empty: true,
    }
}

/// A reference table: its columns in the reference's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableSchema {
    pub name: &'static str,
    pub columns: &'static [ColumnDef],
}

impl TableSchema {
    /// The binary image columns, in order.
    pub fn image_columns(&self) -> impl Iterator<Item = &ColumnDef> {
        self.columns.iter().filter(|c| c.ty == ColType::Binary)
    }

    /// The columns a reader requires, with the kinds it accepts.
    pub fn required(&self) -> Vec<(&'static str, ColKind)> {
        self.columns
            .iter()
            .filter(|c| c.read)
            .map(|c| (c.name, c.ty.reader_kind(c.may_be_empty)))
            .collect()
    }
}

use ColType::*;

/// `write_vqa.py`, `write_vgqa.py`: one row per image, per-question lists aligned with `questions`.
pub const VQA: TableSchema = TableSchema {
    name: "vqa",
    columns: &[
        col("image", Binary, true),
        col("questions", StrList, true),
        col_empty("answers", StrListList),
        col_empty("answer_labels", Int64ListList),
        col_empty("answer_scores", F64ListList),
        col("image_id", Int64, false),
        col("question_id", Int64List, true),
        col("split", Str, false),
    ],
};

/// `write_nlvr2.py`: one row per image pair.
pub const NLVR2: TableSchema = TableSchema {
    name: "nlvr2",
    columns: &[
        col("image_0", Binary, true),
        col("image_1", Binary, true),
        col("questions", StrList, true),
        col("answers", StrList, true),
        col("identifier", Str, false),
    ],
};

/// `write_snli.py`: one row per Flickr30K image; `sentences` items are `[premise, hypothesis]`.
pub const SNLI: TableSchema = TableSchema {
    name: "snli",
    columns: &[
        col("image", Binary, true),
        col("sentences", StrListList, true),
        col("labels", Int64List, true),
    ],
};

/// `write_f30k_karpathy.py`, `write_coco_karpathy.py`, `write_sbu.py`,
/// `write_conceptual_caption.py`.
pub const CAPTION: TableSchema = TableSchema {
    name: "caption",
    columns: &[
        col("image", Binary, true),
        col("caption", StrList, true),
        col("image_id", Str, false),
        col("split", Str, false),
    ],
};

/// `write_vg.py`: region phrases and their boxes.
pub const VG_CAPTION: TableSchema = TableSchema {
    name: "vg caption",
    columns: &[
        col("image", Binary, true),
        col("caption", StrList, true),
        col("width", Int64List, false),
        col("height", Int64List, false),
        col("x", Int64List, false),
        col("y", Int64List, false),
        col("image_id", Str, false),
    ],
};

/// The column pandas adds for a frame built from no rows (its index is not a RangeIndex then).
pub const EMPTY_INDEX_COLUMN: &str = "__index_level_0__";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reader_kinds_accept_the_written_types() {
        for table in [VQA, NLVR2, SNLI, CAPTION, VG_CAPTION] {
            for c in table.columns {
                let kind = c.ty.reader_kind(c.may_be_empty);
                assert!(kind.matches(&c.ty.data_type()), "{}.{}", table.name, c.name);
                let null_list = DataType::List(Arc::new(Field::new("item", DataType::Null, true)));
                assert_eq!(
                    kind.matches(&null_list),
                    c.may_be_empty,
                    "{}.{}",
                    table.name,
                    c.name
                );
            }
        }
    }
}
