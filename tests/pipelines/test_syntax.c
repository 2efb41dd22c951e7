/* pipelines: what is wrong with the file as YAML, before any key is looked
 * at: syntax, tabs, encoding, empty files, several documents, anchors and
 * aliases, duplicate keys, tags. Each with its exact message and 1-based
 * line:col. */
#include "pipe_test.h"

Test(pipelines, syntax_error_gives_libyaml_problem_and_context_with_1_based_positions)
{
    EXPECT_LOAD(FIXTURE("syntax-error.yaml"),
                "tests/pipelines/fixtures/syntax-error.yaml:3:7: did not find expected ',' or '}' "
                "(while parsing a flow mapping at 2:10)");
}

Test(pipelines, unclosed_list_is_a_syntax_error)
{
    EXPECT_PARSE("stages: [\n", "t.yaml:2:1: did not find expected node content (while parsing a flow node at 2:1)");
}

Test(pipelines, tab_that_starts_a_line_is_named_as_a_tab)
{
    EXPECT_LOAD(FIXTURE("tabs.yaml"), "tests/pipelines/fixtures/tabs.yaml:3:1: found character that cannot start any "
                                      "token: a tab in the indentation (YAML indents with spaces, never tabs)");
}

Test(pipelines, tab_after_spaces_in_the_indentation_is_named_as_a_tab)
{
    EXPECT_PARSE("stages:\n  - train:\n      model: m\n\t  data: d\n",
                 "t.yaml:4:1: found a tab character that violates indentation (YAML indents with spaces, never tabs)");
}

Test(pipelines, tab_between_key_and_value_is_fine)
{
    EXPECT_PARSE("seed:\t3\nstages: []\n", "t.yaml:2:9: 'stages' must list at least one stage");
}

Test(pipelines, invalid_utf8_names_the_bytes_and_the_position_of_the_sequence)
{
    /* "caf\xe9.idx": a Latin-1 e-acute, the start of a sequence '.' cannot continue. */
    EXPECT_LOAD(FIXTURE("not-utf8.yaml"), "tests/pipelines/fixtures/not-utf8.yaml:2:44: the file is not valid UTF-8 "
                                          "(invalid trailing UTF-8 octet 0x2e after 0xe9)");
}

Test(pipelines, invalid_leading_byte_is_not_utf8)
{
    EXPECT_PARSE("seed: 1\nname: x\xffy\n",
                 "t.yaml:2:8: the file is not valid UTF-8 (invalid leading UTF-8 octet 0xff)");
}

Test(pipelines, file_ending_inside_a_utf8_sequence_is_not_utf8)
{
    EXPECT_PARSE("seed: 1\nname: \xc3",
                 "t.yaml:2:7: the file is not valid UTF-8 (incomplete UTF-8 octet sequence 0xc3)");
}

Test(pipelines, utf16_file_is_reported_as_not_utf8)
{
    const char text[] = "\xff\xfes\0e\0e\0d\0:\0 \0001\0\n\0";
    expect_parse(text, sizeof text - 1, NULL, 0,
                 LIST("t.yaml:1:1: the file is not valid UTF-8 (invalid leading UTF-8 octet 0xff)"));
}

Test(pipelines, control_character_is_reported_with_its_position)
{
    EXPECT_LOAD(FIXTURE("control-char.yaml"),
                "tests/pipelines/fixtures/control-char.yaml:1:11: control character 0x07 is not allowed (the file "
                "must be text)");
}

Test(pipelines, nul_byte_is_a_control_character)
{
    const char text[] = "seed: 1\nstages:\0 []\n";
    expect_parse(text, sizeof text - 1, NULL, 0,
                 LIST("t.yaml:2:8: control character 0x00 is not allowed (the file must be text)"));
}

Test(pipelines, utf8_byte_order_mark_is_skipped_without_shifting_columns)
{
    EXPECT_PARSE("\xef\xbb\xbfseed: x\nstages: []\n", "t.yaml:1:7: 'seed' must be an integer, got string 'x'",
                 "t.yaml:2:9: 'stages' must list at least one stage");
}

Test(pipelines, multibyte_characters_count_as_one_column)
{
    /* "h\xc3\xa9" is three characters in four bytes: seed's value is at column 20. */
    EXPECT_PARSE("{name: \"h\xc3\xa9\", seed: x, stages: []}\n",
                 "t.yaml:1:8: pipeline name 'h\xc3\xa9' may only contain letters, digits, '_' and '-'",
                 "t.yaml:1:20: 'seed' must be an integer, got string 'x'",
                 "t.yaml:1:31: 'stages' must list at least one stage");
}

Test(pipelines, crlf_line_ends_count_as_one_line)
{
    EXPECT_PARSE(MINI "stages:\r\n  - train: {model: m}\r\n",
                 "t.yaml:6:5: missing required key 'data' in a train stage");
}

Test(pipelines, empty_file_is_reported)
{
    EXPECT_LOAD(FIXTURE("empty.yaml"),
                "tests/pipelines/fixtures/empty.yaml: the file is empty: a pipeline needs at least 'stages'");
}

Test(pipelines, file_of_comments_only_is_empty)
{
    EXPECT_LOAD(FIXTURE("comments-only.yaml"),
                "tests/pipelines/fixtures/comments-only.yaml: the file is empty: a pipeline needs at least 'stages'");
}

Test(pipelines, document_with_no_content_is_empty)
{
    EXPECT_PARSE("---\n", "t.yaml: the file is empty: a pipeline needs at least 'stages'");
}

Test(pipelines, second_document_is_an_error_at_its_start)
{
    EXPECT_LOAD(FIXTURE("two-documents.yaml"),
                "tests/pipelines/fixtures/two-documents.yaml:7:1: several documents in one file: a pipeline is one "
                "YAML document, and this starts a second one");
}

Test(pipelines, anchors_and_aliases_are_rejected_where_they_are)
{
    EXPECT_LOAD(FIXTURE("anchors.yaml"),
                "tests/pipelines/fixtures/anchors.yaml:4:12: anchors and aliases are not supported in kd pipelines "
                "(found anchor '&small')",
                "tests/pipelines/fixtures/anchors.yaml:5:9: anchors and aliases are not supported in kd pipelines "
                "(found alias '*small')");
}

Test(pipelines, duplicate_keys_are_reported_at_the_second_naming_the_first_line)
{
    EXPECT_LOAD(FIXTURE("duplicate-key.yaml"),
                "tests/pipelines/fixtures/duplicate-key.yaml:10:7: duplicate key 'epochs': first given at line 9",
                "tests/pipelines/fixtures/duplicate-key.yaml:11:1: duplicate key 'models': first given at line 3");
}

Test(pipelines, duplicate_keys_in_a_flow_mapping_are_reported)
{
    EXPECT_PARSE(MINI "stages:\n  - train: {model: m, data: d, model: m}\n",
                 "t.yaml:6:32: duplicate key 'model': first given at line 6");
}

Test(pipelines, tags_are_rejected)
{
    EXPECT_PARSE("seed: !!str 3\nname: !local x\nstages: []\n",
                 "t.yaml:1:7: tags are not supported in kd pipelines (found '!!str'); quote a value to make it a "
                 "string",
                 "t.yaml:2:7: tags are not supported in kd pipelines (found '!local'); quote a value to make it a "
                 "string",
                 "t.yaml:3:9: 'stages' must list at least one stage");
}

Test(pipelines, a_list_as_a_key_is_rejected)
{
    EXPECT_PARSE("? [a, b]\n: 1\nstages: []\n", "t.yaml:1:3: a mapping key must be a name, got a list",
                 "t.yaml:3:9: 'stages' must list at least one stage");
}

Test(pipelines, top_level_must_be_a_mapping)
{
    EXPECT_PARSE("- train: {}\n",
                 "t.yaml:1:1: a pipeline must be a mapping of keys (version, name, datasets, ..., stages), got a list");
    EXPECT_PARSE("just text\n", "t.yaml:1:1: a pipeline must be a mapping of keys (version, name, datasets, ..., "
                                "stages), got string 'just text'");
}

Test(pipelines, nesting_too_deep_stops_parsing)
{
    char text[256] = "stages: ";
    for (int i = 0; i < 70; i++)
        strcat(text, "[");
    for (int i = 0; i < 70; i++)
        strcat(text, "]");
    EXPECT_PARSE(text, "t.yaml:1:73: nested more than 64 levels deep");
}

Test(pipelines, missing_file_is_an_io_error_naming_it)
{
    struct kd_pipeline p;
    struct kd_diag d;
    kd_diag_init(&d);
    kd_status st = kd_pipeline_load(FIXTURE("no-such-file.yaml"), NULL, 0, &p, &d);
    cr_assert_eq(st, KD_ERR_IO);
    check_diag(&d, LIST("cannot open 'tests/pipelines/fixtures/no-such-file.yaml': No such file or directory"));
    check_released(&p);
    kd_diag_release(&d);
}

Test(pipelines, unclosed_quoted_string_is_reported_where_it_starts)
{
    EXPECT_PARSE("name: \"abc\nseed: 3\nstages:\n  - train: {model: m}\n",
                 "t.yaml:1:7: this quoted string is never closed: the file ends inside it, at 5:1");
    /* A tab on the last line is part of the string, not indentation. */
    EXPECT_PARSE("seed: 3\nname: 'abc\n\t", "t.yaml:2:7: this quoted string is never closed: the file ends inside it, "
                 "at 3:2");
}
